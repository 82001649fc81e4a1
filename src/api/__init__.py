"""The HTTP face of taskjet: dispatch tasks, read their status, check health."""
