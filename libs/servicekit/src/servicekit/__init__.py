"""Plumbing every service shares: settings base, the Kafka broker, dead letters, HTTP shell."""
