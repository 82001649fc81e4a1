"""The application's tasks, and `broker.py`, the broker and decorator they register with."""
