"""The taskjet engine: everything that carries, runs and records tasks, apart from the tasks.

Sub-packages by stage, each importing only from those listed before it:

    core        names, task labels, states, the wire format, task errors (pure, no I/O)
    backends    the NATS connection, the Redis client, JetStream streams and consumers
    state       task records, results, events and dead letters in Redis and JetStream
    sending     dispatch: `kiq`, `kiq_many`, delays, the handle `kiq` returns
    worker      fetching, admitting, running and settling deliveries; leases and limits
    scheduling  periodic schedules (code and API) and the ticker every process runs
    operations  cancel, retry, requeue, purge, queue status: steering from the API and CLI

`broker.py` wires them into `JetStreamBroker`, the taskiq broker the application's tasks use
(`src.tasks.broker`).
"""
