"""xmin pin: a drain while another session holds a REPEATABLE READ transaction open, against an
unpinned drain of the same size in the same run.

The pinning session reads the jobs table first, so its snapshot is taken and its backend_xmin
set: from then on no dead row version newer than that snapshot can be vacuumed or pruned, and
every claim scans over the drain's dead tuples. The pin is held for the whole drain, at most
`cap` seconds (60 s by default). Errors of either session are reported, not raised.
"""

from __future__ import annotations

import time
from typing import Any

import psycopg

from bench._common import SCHEMA, libpq
from bench.drain import DrainOptions, drain


class _Pin:
    def __init__(self, url: str, cap: float) -> None:
        self.url = url
        self.cap = cap
        self.conn: psycopg.Connection[Any] | None = None
        self.backend_xmin: str | None = None
        self.held_s: float | None = None
        self._since = 0.0
        self.errors: list[str] = []

    def take(self) -> None:
        conn = psycopg.connect(libpq(self.url))
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.execute(f"SELECT count(*) FROM {SCHEMA}.jobs").fetchone()  # takes the snapshot
        row = conn.execute(
            "SELECT backend_xmin::text FROM pg_stat_activity WHERE pid = pg_backend_pid()"
        ).fetchone()
        self.backend_xmin = row[0] if row else None
        self.conn = conn
        self._since = time.perf_counter()

    def release(self) -> None:
        if self.conn is None:
            return
        self.held_s = round(time.perf_counter() - self._since, 3)
        try:
            self.conn.rollback()
            self.conn.close()
        except psycopg.Error as exc:
            self.errors.append(f"pinning session: {exc}")
        self.conn = None

    def on_poll(self, _elapsed: float) -> None:
        if self.conn is not None and time.perf_counter() - self._since >= self.cap:
            self.release()


def run(url: str, jobs: int, options: DrainOptions, cap: float = 60.0) -> dict[str, Any]:
    unpinned = drain(url, jobs, options)
    pin = _Pin(url, cap)
    errors: list[str] = []
    pinned: dict[str, Any] | None = None
    try:
        pinned = drain(url, jobs, options, before_start=pin.take, on_poll=pin.on_poll)
    except Exception as exc:
        errors.append(f"pinned drain: {type(exc).__name__}: {exc}")
    finally:
        pin.release()
    errors += pin.errors
    ratio = (
        round(pinned["jobs_per_s"] / unpinned["jobs_per_s"], 3)
        if pinned and unpinned["jobs_per_s"]
        else None
    )
    return {
        "jobs": jobs,
        "cap_s": cap,
        "unpinned": unpinned,
        "pinned": pinned,
        "pin": {"backend_xmin": pin.backend_xmin, "held_s": pin.held_s},
        "pinned_to_unpinned": ratio,
        "jobs_per_s": pinned["jobs_per_s"] if pinned else None,
        "errors": errors,
    }
