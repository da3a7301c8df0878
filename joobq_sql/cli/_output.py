"""Printing: rich tables for people, JSON for scripts, progress bars on stderr.

Tables and results go to stdout; notices, progress and errors go to stderr, so that
`--json` output can always be piped into a parser.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import click
from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table


def stdout_console() -> Console:
    console = Console()
    if not console.is_terminal:
        # Piped into a file or a pager: no wrapping of long ids at an assumed 80 columns.
        console = Console(width=max(console.width, 200))
    return console


def stderr_console() -> Console:
    return Console(stderr=True)


def emit_json(value: Any) -> None:
    """Print `value` as JSON on stdout (datetimes and UUIDs as strings)."""
    click.echo(json.dumps(value, indent=2, default=str))


def make_table(columns: Sequence[str], rows: Sequence[Sequence[Any]], *, title: str = "") -> Table:
    table = Table(*columns, box=box.SIMPLE_HEAD, title=title or None, title_justify="left")
    for row in rows:
        table.add_row(*("" if cell is None else str(cell) for cell in row))
    return table


def print_table(columns: Sequence[str], rows: Sequence[Sequence[Any]], *, title: str = "") -> None:
    stdout_console().print(make_table(columns, rows, title=title))


def age(seconds: float | None) -> str:
    """A short age: 850ms, 12s, 3m05s, 2h10m, 4d03h."""
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d{whole % 86400 // 3600:02d}h"


def when(moment: datetime | None) -> str:
    """A timestamp in local time, to the second."""
    return "-" if moment is None else moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")


@contextlib.contextmanager
def progress_bar(description: str, total: int | None) -> Iterator[Any]:
    """A progress bar on stderr when it is a terminal, else nothing (the caller prints a
    summary). Yields a function `advance(n)`."""
    console = stderr_console()
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=not console.is_terminal,
        transient=False,
    )
    with bar:
        task = bar.add_task(description, total=total)
        yield lambda n=1: bar.advance(task, n)
