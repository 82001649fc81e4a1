"""taskjet: async-native background tasks on taskiq, NATS JetStream and Redis."""

__version__ = "0.1.0"
