"""`joobq-sql stats [--watch]`: what each queue holds now, and its running totals."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

import click
from rich.console import Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from ..store.postgres.queue_stats import ESTIMABLE_COUNTS
from ..store.records import COUNTER_NAMES, QueueStats
from ._context import CliContext, json_option, pass_cli
from ._output import age, emit_json, make_table, stdout_console

# What the queue holds now, then its running totals (state changes since counters began).
COLUMNS = [
    "queue",
    "waiting",
    "due later",
    "running",
    "retrying",
    "dead",
    "completed",
    "oldest waiting",
    *(f"total {name}" for name in COUNTER_NAMES),
]


#: Before a count that is an estimate (QueueStats.estimated: a PostgresStore counts at most
#: STATS_EXACT_LIMIT rows of each part of a queue exactly, store/postgres/queue_stats.py).
APPROX = "\N{ALMOST EQUAL TO}"
_NOW = ("waiting", "due_later", "running", "retrying", "dead", "completed")


def shown_count(stats: QueueStats, name: str) -> str:
    """The count `name` of `stats` as text, marked when it is an estimate."""
    count = getattr(stats, name)
    if stats.estimated and name in ESTIMABLE_COUNTS:
        return f"{APPROX}{count}"
    return str(count)


def stats_document(stats: QueueStats) -> dict[str, Any]:
    return {
        "queue": stats.queue,
        "paused": getattr(stats, "paused", False),
        "waiting": stats.waiting,
        "due_later": stats.due_later,
        "running": stats.running,
        "retrying": stats.retrying,
        "dead": stats.dead,
        "completed": stats.completed,
        "oldest_waiting_age": stats.oldest_waiting_age,
        "totals": dict(stats.totals),
        # the counts but running are estimates (they stay numbers, for scripts)
        "estimated": stats.estimated,
    }


def stats_table(all_stats: dict[str, QueueStats]) -> Table:
    rows = []
    for s in all_stats.values():
        name = f"{s.queue} (paused)" if getattr(s, "paused", False) else s.queue
        now = [shown_count(s, name) for name in _NOW]
        rows.append([name, *now, age(s.oldest_waiting_age), *(s.totals[n] for n in COUNTER_NAMES)])
    if not rows:
        rows.append(["(no queues yet)", *[""] * (len(COLUMNS) - 1)])
    return make_table(COLUMNS, rows)


@click.command(name="stats", short_help="Show a table per queue (--watch: live).")
@click.option("--watch", is_flag=True, help="Refresh until Ctrl-C.")
@click.option(
    "--interval",
    type=click.FloatRange(min=0.1),
    default=1.0,
    show_default=True,
    metavar="SECONDS",
    help="Seconds between refreshes with --watch.",
)
@json_option
@pass_cli
def command(cli: CliContext, watch: bool, interval: float) -> None:
    """Per queue: waiting, due later, running, retrying, dead, completed, the oldest waiting
    job's age, and the totals (completed, retried, dead, expired, rescued). The counts of a
    queue with very many jobs in a state are estimates, so that a poll costs what the queues
    cost, not the jobs: shown as "≈12000" ("estimated": true in --json)."""
    store = cli.store()
    if not watch:
        _show(cli, store.queue_stats())
        return
    with _until_ctrl_c() as stopped:
        if cli.json or not stdout_console().is_terminal:
            # Piped: one snapshot per interval (JSON lines with --json), never redrawn.
            while not stopped.is_set():
                _show(cli, store.queue_stats(), compact=True)
                stopped.wait(interval)
            return
        with Live(console=stdout_console(), auto_refresh=False) as live:
            while not stopped.is_set():
                stamp = Text(f"every {interval:g}s, Ctrl-C to stop", style="dim")
                live.update(Group(stats_table(store.queue_stats()), stamp), refresh=True)
                stopped.wait(interval)


@contextlib.contextmanager
def _until_ctrl_c() -> Iterator[threading.Event]:
    """Ctrl-C (SIGINT) ends --watch at its next refresh, a success. It only sets a flag: a
    KeyboardInterrupt raised in the middle of a query could leave the pool's connection and
    the process hanging on its way out. A second Ctrl-C interrupts at once."""
    stopped = threading.Event()

    def on_sigint(signum: int, frame: FrameType | None) -> None:
        if stopped.is_set():
            raise KeyboardInterrupt
        stopped.set()

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield stopped
    except KeyboardInterrupt:
        pass  # the second Ctrl-C: still how --watch ends
    finally:
        signal.signal(signal.SIGINT, previous)


def _show(cli: CliContext, all_stats: dict[str, QueueStats], *, compact: bool = False) -> None:
    if cli.json:
        documents = [stats_document(s) for s in all_stats.values()]
        if compact:
            import json

            click.echo(json.dumps({"queues": documents}, default=str))
        else:
            emit_json({"queues": documents})
    else:
        stdout_console().print(stats_table(all_stats))
