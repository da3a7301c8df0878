"""Printing: rich tables for people, JSON for scripts, progress bars on stderr.

Tables and results go to stdout; notices, progress and errors go to stderr, so that
`--json` output can always be piped into a parser.

Text from the database (job errors, queue names, job types, transaction ids: anything a job,
a client or a hand edit may have written) reaches the terminal only through `safe_text`: each
control character is printed as a visible escape (ESC as \\x1b), so that stored text cannot
retitle the terminal, move its cursor or rewrite what the operator sees. Every table cell and
every `echo` line goes through it, and table cells are never read as rich markup. JSON is safe
as it is: json.dumps escapes every control character.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import IO, Any

import click
from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

#: What a terminal may act on rather than show: C0 controls (ESC starts every escape
#: sequence, BEL ends an OSC, CR and backspace overwrite), DEL, C1 controls (U+009B is a CSI by
#: itself, U+009D an OSC, for terminals that take 8-bit controls), and the characters that
#: reorder or break the line shown: bidi embeddings, overrides and isolates, line and
#: paragraph separators. Newline and tab are kept where the layout allows them.
_UNSAFE = "\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069"
_UNSAFE_IN_TEXT = re.compile(f"[{_UNSAFE}]")
_UNSAFE_IN_A_LINE = re.compile(f"[{_UNSAFE}\t\n]")


_NAMED_ESCAPES = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}


def _escape(match: re.Match[str]) -> str:
    ch = match.group()
    if ch in _NAMED_ESCAPES:
        return _NAMED_ESCAPES[ch]
    return f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}"


def safe_text(value: object, *, one_line: bool = False) -> str:
    """`value` as text a terminal only shows: each control character as a visible escape
    (``\\x1b``, ``\\u202e``). With `one_line`, newlines and tabs are escaped too."""
    pattern = _UNSAFE_IN_A_LINE if one_line else _UNSAFE_IN_TEXT
    return pattern.sub(_escape, str(value))


def echo(message: object = "", *, err: bool = False, file: IO[Any] | None = None) -> None:
    """click.echo of `message` made safe for a terminal (see safe_text)."""
    click.echo(safe_text(message), err=err, file=file)


class SafeLogFormatter(logging.Formatter):
    """A log formatter whose lines are safe for a terminal: a job type or an error message
    from the database is logged with its control characters escaped."""

    def format(self, record: logging.LogRecord) -> str:
        return safe_text(super().format(record))


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
    """A table of `rows`; each cell is shown as plain text (safe_text, never rich markup, so
    that a stored "[/]" is printed, not parsed)."""
    table = Table(*columns, box=box.SIMPLE_HEAD, title=title or None, title_justify="left")
    for row in rows:
        table.add_row(*(Text("" if cell is None else safe_text(cell)) for cell in row))
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
