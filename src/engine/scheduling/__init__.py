"""Periodic schedules from code and from the API, fired by a ticker in every process.

May use `core`, `backends`, `state` and `sending`.
"""
