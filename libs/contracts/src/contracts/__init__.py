"""Event contracts shared by every service: topics, their keys and their payloads."""
