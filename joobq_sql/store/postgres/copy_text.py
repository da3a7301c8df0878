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
    now_text = str(now)
    expiries: dict[float | None, str] = {None: _NULL}
    names: dict[str, str] = {}
    lines: list[str] = []
    for job in jobs:
        if job.run_at is not None:
            status, run_at = "scheduled", str(job.run_at)
            if job.run_at <= now:
                runnable.add(job.queue)
        elif job.delay > 0:
            status, run_at = "scheduled", str(now + timedelta(seconds=job.delay))
        else:
            status, run_at = "enqueued", now_text
            runnable.add(job.queue)
        if job.expires_at is not None:
            expires_at = str(job.expires_at)
        elif (known := expiries.get(job.expires_in)) is not None:
            expires_at = known  # a class's jobs share one expiry
        else:
            seconds = job.expires_in
            assert seconds is not None  # None is in the dict
            expires_at = expiries[seconds] = str(now + timedelta(seconds=seconds))
        queue = names.get(job.queue) or names.setdefault(job.queue, _escaped(job.queue))
        job_type = names.get(job.job_type) or names.setdefault(job.job_type, _escaped(job.job_type))
        lines.append(
            # uuid's input takes the 32 hex digits without hyphens.
            f"{job.jid.hex}\t{queue}\t{job_type}\t{_escaped(job.args_json)}\t{status}\t"
            f"{job.priority}\t{run_at}\t{job.max_retries}\t{expires_at}\n"
        )
        if len(lines) == ROWS_PER_WRITE:
            yield "".join(lines)
            lines.clear()
    if lines:
        yield "".join(lines)


def _escaped(value: str) -> str:
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
        return value.translate(_ESCAPES)
    return value
