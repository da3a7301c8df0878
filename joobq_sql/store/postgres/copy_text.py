"""New jobs as COPY text-format data, for copy_jobs.sql.

psycopg's ``Copy.write_row`` adapts each value of each row through its dumpers, in Python for
some types (a UUID's is); for the rows of a bulk enqueue that cost more than the server's work
on them. Here a row is one string, its values written as PostgreSQL's text input reads them
(the same text psycopg's text dumpers send), with COPY's escapes for backslash, tab, newline
and carriage return. This is data, not SQL: the server parses each column with its type's
input function (uuid, text, jsonb, smallint, timestamptz), exactly as from psycopg's rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from itertools import groupby, islice
from operator import attrgetter
from typing import Any

from ..records import NewJob

#: COPY's text format: these four characters are written as escapes (NULL is \N).
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_NULL = "\\N"

#: Rows per string handed to Copy.write: big enough to amortize the call, small enough that
#: a batch of large payloads is not held twice in memory.
ROWS_PER_WRITE = 500


def copy_text(jobs: Iterable[NewJob], now: datetime, runnable: set[str]) -> Iterator[str]:
    """The rows of `jobs` for copy_jobs.sql's columns, ROWS_PER_WRITE at a time; the queue of
    each job runnable at once is added to `runnable` on the way (for the wake-ups).

    `now` is the transaction's now(): a job without `run_at` runs at now() plus its delay,
    one without `expires_at` expires at now() plus `expires_in` (enqueue_jobs.sql's rules).
    """
    # A row is its jid, its args, and text that every job of the same options shares (a bulk
    # enqueue's jobs are mostly of one class, in runs): that text is made once per run, and
    # the rows of a run are written by one comprehension.
    shared: dict[tuple[Any, ...], tuple[str, str]] = {}
    pending: list[str] = []
    rows = 0
    for options, run in groupby(jobs, _options):
        known = shared.get(options)
        if known is None:
            known = shared[options] = _shared_text(options, now, runnable)
        head, tail = known
        # uuid's input takes the 32 hex digits without hyphens.
        while text := [
            f"{job.jid.hex}\t{head}{_escaped(job.args_json)}{tail}"
            for job in islice(run, ROWS_PER_WRITE - rows)
        ]:
            pending.append("".join(text))
            rows += len(text)
            if rows == ROWS_PER_WRITE:
                yield "".join(pending)
                pending.clear()
                rows = 0
    if pending:
        yield "".join(pending)


#: What decides a row's text but for its jid and args.
_options = attrgetter(
    "queue", "job_type", "priority", "max_retries", "delay", "run_at", "expires_in", "expires_at"
)


def _shared_text(options: tuple[Any, ...], now: datetime, runnable: set[str]) -> tuple[str, str]:
    """The text before the args of jobs of these `options` (_options' values) and after them;
    adds their queue to `runnable` when they are runnable at once."""
    queue, job_type, priority, max_retries, delay, run_at, expires_in, expires_at = options
    if run_at is not None:
        status, run_at_text = "scheduled", str(run_at)
        if run_at <= now:
            runnable.add(queue)
    elif delay > 0:
        status, run_at_text = "scheduled", str(now + timedelta(seconds=delay))
    else:
        status, run_at_text = "enqueued", str(now)
        runnable.add(queue)
    if expires_at is not None:
        expires_text = str(expires_at)
    elif expires_in is not None:
        expires_text = str(now + timedelta(seconds=expires_in))
    else:
        expires_text = _NULL
    head = f"{_escaped(queue)}\t{_escaped(job_type)}\t"
    tail = f"\t{status}\t{priority}\t{run_at_text}\t{max_retries}\t{expires_text}\n"
    return head, tail


def _escaped(value: str) -> str:
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
        return value.translate(_ESCAPES)
    return value
