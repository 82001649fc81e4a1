"""`taskjet` command line: run the embedded default, check a configuration, and operate a
running system (inspect, tail events, steer queues and schedules, dead letters, reset).

One module per command group; each talks to NATS and Redis through the engine, as the API does.
"""

from __future__ import annotations

import typer

from src.cli import (
    dlq,
    events,
    inspect,
    queues,
    reset,
    schedules,
    service,
    settings,
    worker,
    workflows,
)

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="taskjet: run the embedded default, check a configuration, and operate a running "
    "system (inspect, tail events, steer queues and schedules, dead letters, reset).",
)
app.command()(service.run)
app.command()(service.check)
app.command()(service.alive)
# Everything after `worker` is `taskiq worker`'s, passed on untouched.
app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)(worker.worker)
app.add_typer(inspect.app, name="inspect")
app.command()(events.events)
app.command()(queues.purge)
app.add_typer(queues.app, name="queues")
app.add_typer(schedules.app, name="schedules")
app.add_typer(dlq.app, name="dlq")
app.add_typer(workflows.app, name="workflow")
app.command()(reset.reset)
app.command()(settings.env_example)
app.command()(settings.config_env)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
