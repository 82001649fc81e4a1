"""`taskjet worker`: the worker processes' own manager, lighter than `taskiq worker`'s.

It starts N worker processes, each running taskiq's own worker loop (`child.py`), restarts one
that ends (recycled after its task or memory limit, or crashed), passes SIGTERM/SIGINT on
(the first asks for a graceful stop, a second cancels what still runs), and restarts every
process, one after the other, on SIGHUP. A worker process that refuses to start (exit code 2:
bad options or settings) stops it all with that code instead of being restarted for ever.

Why it exists beside `taskiq worker`, which keeps working: taskiq's manager process imports
taskiq, and with it FastAPI and aiohttp (about 58 MB resident) only to watch its children.
This package's manager (`__main__.py`, `supervisor.py`) uses the standard library and the
JSON log formatter only (about 14 MB); `child.py`, run in each worker process, is the one
module that imports taskiq.
"""
