"""The periodic jobs example's test setup: taskjet's fixtures, nothing else."""

pytest_plugins = ["src.testing"]
