"""Running tasks: fetch by priority lane, admit, run under taskiq's receiver, settle once.

May use `core`, `backends`, `state` and `sending`.
"""
