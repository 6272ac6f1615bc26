"""A connection point's agent: heartbeats with the learner count the room reports."""
