"""The literature miner example's test setup: taskjet's fixtures, nothing else."""

pytest_plugins = ["src.testing"]
