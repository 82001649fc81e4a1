"""What taskjet remembers about tasks: records, results, events and dead letters.

May use `core` and `backends`.
"""
