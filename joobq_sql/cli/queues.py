"""`joobq-sql queues list|pause|resume`: a paused queue keeps its jobs, and workers of every
process claim nothing from it until it is resumed (running jobs finish)."""

from __future__ import annotations

import click

from ._context import CliContext, existing_queue_name, json_option, pass_cli, queue_name
from ._output import age, emit_json, print_table


@click.group(name="queues")
def command() -> None:
    """List, pause and resume queues."""


@command.command(name="list")
@json_option
@pass_cli
def list_queues(cli: CliContext) -> None:
    """Every queue that holds jobs, has counters, or is paused."""
    store = cli.store()
    stats = store.queue_stats()
    paused = store.paused_queues()
    names = sorted(stats.keys() | paused)
    rows = []
    for name in names:
        s = stats.get(name)
        counts = (s.waiting, s.due_later, s.running, s.retrying, s.dead) if s else (0,) * 5
        rows.append((name, name in paused, *counts, age(s.oldest_waiting_age) if s else "-"))
    if cli.json:
        keys = ("queue", "paused", "waiting", "due_later", "running", "retrying", "dead")
        emit_json([dict(zip(keys, row[:-1], strict=True)) for row in rows])
        return
    columns = [
        "queue",
        "paused",
        "waiting",
        "due later",
        "running",
        "retrying",
        "dead",
        "oldest waiting",
    ]
    print_table(columns, [(r[0], "yes" if r[1] else "", *r[2:]) for r in rows])


@command.command()
@click.argument("queue", callback=queue_name)
@json_option
@pass_cli
def pause(cli: CliContext, queue: str) -> None:
    """Stop workers from claiming jobs of QUEUE."""
    changed = cli.store().pause_queue(queue)
    _report(cli, queue, "paused", changed)


@command.command()
@click.argument("queue", callback=existing_queue_name)  # a queue paused under an old name too
@json_option
@pass_cli
def resume(cli: CliContext, queue: str) -> None:
    """Let workers claim jobs of QUEUE again."""
    changed = cli.store().resume_queue(queue)
    _report(cli, queue, "resumed", changed)


def _report(cli: CliContext, queue: str, verb: str, changed: bool) -> None:
    if cli.json:
        emit_json({"queue": queue, verb: True, "changed": changed})
    else:
        click.echo(f"queue {queue} {verb}" if changed else f"queue {queue} was already {verb}")
