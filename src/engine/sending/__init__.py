"""Dispatching tasks: the kicker behind `kiq`, publishing, delays, and the handle it returns.

May use `core`, `backends` and `state`.
"""
