"""The connections to NATS and Redis, and the JetStream streams and consumers taskjet needs.

May use `core` and the settings.
"""
