"""taskjet's benchmark suite: taskjet side by side with its peers, on private servers.

Run it with `make bench` or `python -m bench --help`; see `bench/README.md`.
"""
