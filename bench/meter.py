"""What a workload costs the server: WAL and transactions, per phase and per job.

A Meter brackets phases of one workload (enqueue, drain, claim, completion...). At each end it
reads, from a session of its own:

- the WAL position (`pg_current_wal_insert_lsn()`, where the next record goes, rather than
  `pg_current_wal_lsn()`, which lags it by what the WAL writer has not written yet): the WAL
  generated between the two points, in bytes (server-wide);
- `pg_stat_wal`: WAL records, full-page images and bytes as the statistics count them;
- `pg_stat_database`: commits and rollbacks of the workload's database only.

The WAL figures are server-wide: on a server of its own (the benchmark's default) they are the
workload's, autovacuum and checkpoints' full-page images included; on a shared server (`--url`)
other databases' writes count too. Backends report their statistics lazily (at most once a
second, and when they exit), so a phase ends only once the sessions that the workload opened
during it have closed and the database's commit count has settled. The Meter reads from the
server's `postgres` database where it can, so that its own reads are not counted as the
workload's transactions.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
from sqlalchemy.engine import make_url

#: How long a phase's end waits for the sessions opened during it to close.
SESSION_DEADLINE_S = 15.0
#: How long the commit count must stay unchanged before it is read as final.
SETTLE_S = 0.05


@dataclass(frozen=True)
class Snapshot:
    at: float
    lsn: str
    wal_records: int
    wal_fpi: int
    wal_bytes: int
    commits: int
    rollbacks: int


class Meter:
    """Phases of one workload on the database at `url`; `phases` holds what each cost."""

    def __init__(self, url: str) -> None:
        self.url = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        self.database = make_url(url).database or ""
        self.phases: dict[str, dict[str, Any]] = {}
        self._open: tuple[str, Snapshot, set[int]] | None = None
        self._conn = self._connect()

    def _connect(self) -> psycopg.Connection[Any]:
        admin = make_url(self.url).set(database="postgres").render_as_string(hide_password=False)
        try:
            conn = psycopg.connect(admin, autocommit=True)
            self.meter_database = "postgres"
        except psycopg.Error:  # no access to it (a managed server): read from the workload's own
            conn = psycopg.connect(self.url, autocommit=True)
            self.meter_database = self.database
        return conn

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Meter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- phases -----------------------------------------------------------------------------

    @property
    def started(self) -> bool:
        """Whether any phase has begun (a workload that meters itself has begun one)."""
        return bool(self.phases) or self._open is not None

    def begin(self, phase: str) -> None:
        """Start phase `phase` now; a phase still open ends first."""
        if self._open is not None:
            self.end()
        sessions = self._sessions()
        # settled: a session closed just before (the benchmark's own set-up) reports its
        # counts as its backend exits, a moment later; they belong before the phase
        self._open = (phase, self._settled(), sessions)

    def end(self, *, harness_commits: int = 0) -> None:
        """End the open phase, once the sessions opened during it have closed.
        `harness_commits`: transactions the benchmark itself ran in the workload's database
        during the phase (its progress polls), taken off the count."""
        if self._open is None:
            return
        phase, before, sessions = self._open
        self._open = None
        lingering = self._await_sessions(sessions)
        after = self._settled()
        wal = self._conn.execute(
            "SELECT pg_wal_lsn_diff(%s::pg_lsn, %s::pg_lsn)::bigint", (after.lsn, before.lsn)
        ).fetchone()
        own = 1 if self.meter_database == self.database else 0  # the first snapshot's read
        self.phases[phase] = {
            "seconds": round(after.at - before.at, 3),
            "wal_bytes": int(wal[0]) if wal else 0,
            "wal_records": after.wal_records - before.wal_records,
            "wal_fpi": after.wal_fpi - before.wal_fpi,
            "wal_stat_bytes": after.wal_bytes - before.wal_bytes,
            "commits": after.commits - before.commits - harness_commits - own,
            "rollbacks": after.rollbacks - before.rollbacks,
            "sessions_still_open": lingering,
        }

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """`with meter.phase("enqueue"):` brackets its body; the body closes what it opened."""
        self.begin(name)
        yield
        self.end()

    # -- readings ---------------------------------------------------------------------------

    def _snapshot(self) -> Snapshot:
        row = self._conn.execute(
            """SELECT pg_current_wal_insert_lsn()::text, w.wal_records, w.wal_fpi,
                      w.wal_bytes::bigint, d.xact_commit, d.xact_rollback
               FROM pg_stat_wal AS w, pg_stat_database AS d
               WHERE d.datname = %s""",
            (self.database,),
        ).fetchone()
        if row is None:
            raise RuntimeError(f"pg_stat_database has no row for database {self.database!r}")
        return Snapshot(time.perf_counter(), row[0], *map(int, row[1:]))

    def _sessions(self) -> set[int]:
        rows = self._conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND backend_type = "
            "'client backend' AND pid <> pg_backend_pid()",
            (self.database,),
        ).fetchall()
        return {int(r[0]) for r in rows}

    def _await_sessions(self, before: set[int]) -> int:
        """Wait for the sessions opened since `before` to close; how many are still open."""
        deadline = time.monotonic() + SESSION_DEADLINE_S
        while True:
            opened = self._sessions() - before
            if not opened or time.monotonic() > deadline:
                return len(opened)
            time.sleep(0.02)

    def _settled(self) -> Snapshot:
        """A snapshot taken once the commit count stopped moving (an exiting backend reports
        its counts just after it leaves pg_stat_activity)."""
        previous = self._snapshot()
        deadline = time.monotonic() + 2.0
        while True:
            time.sleep(SETTLE_S)
            current = self._snapshot()
            if (current.commits, current.rollbacks) == (previous.commits, previous.rollbacks):
                return current
            if time.monotonic() > deadline:
                return current
            previous = current


def phase(meter: Meter | None, name: str) -> contextlib.AbstractContextManager[None]:
    """`meter.phase(name)`, or nothing without a meter."""
    return contextlib.nullcontext() if meter is None else meter.phase(name)


def per_job(phase: dict[str, Any], jobs: int) -> dict[str, Any]:
    """A phase's costs divided by the jobs it moved: WAL bytes, records, full-page images and
    commits per job."""
    if jobs <= 0:
        return {"jobs": jobs}
    return {
        "jobs": jobs,
        "wal_bytes_per_job": round(phase["wal_bytes"] / jobs, 1),
        "wal_records_per_job": round(phase["wal_records"] / jobs, 3),
        "wal_fpi_per_job": round(phase["wal_fpi"] / jobs, 4),
        "commits_per_job": round(phase["commits"] / jobs, 4),
        "rollbacks": phase["rollbacks"],
        "wal_bytes": phase["wal_bytes"],
        "commits": phase["commits"],
    }


PER_JOB = ("wal_bytes_per_job", "wal_records_per_job", "wal_fpi_per_job", "commits_per_job")


def costs(
    meter: Meter, jobs: dict[str, int], lifecycles: dict[str, list[str]] | None = None
) -> dict[str, Any]:
    """Every phase of `meter` per job (`jobs`: the jobs each phase moved), and each of
    `lifecycles` (a name and the phases one job goes through) as the sum of its phases' per-job
    figures. By default a workload with "enqueue" and "drain" phases has the lifecycle
    "lifecycle": what one job costs from its enqueue to its completion."""
    out: dict[str, Any] = {
        name: per_job(phase, jobs.get(name, 0)) for name, phase in meter.phases.items()
    }
    if lifecycles is None:
        lifecycles = {"lifecycle": ["enqueue", "drain"]} if {"enqueue", "drain"} <= set(out) else {}
    for name, phases in lifecycles.items():
        parts = [out[p] for p in phases if p in out and "wal_bytes_per_job" in out[p]]
        if len(parts) == len(phases):
            total: dict[str, Any] = {"phases": phases}
            for key in PER_JOB:
                total[key] = round(sum(p[key] for p in parts), 4)
            out[name] = total
    return out
