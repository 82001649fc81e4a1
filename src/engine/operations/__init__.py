"""Steering tasks and queues from the API and the CLI: cancel, retry, requeue, status.

May use every other sub-package except the broker's wiring.
"""
