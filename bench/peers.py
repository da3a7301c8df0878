"""peers: pgqueuer and procrastinate, each through its documented API, on the same workloads
as ours in the same run (install them with the `bench` extra): the drain and pickup latency
(pgqueuer's bulk and single enqueues are in bulk.py and single.py). Every function here is one
repetition of one workload; run.py alternates them with ours.

- pgqueuer: a PgQueuer per worker process on one asyncpg connection (psycopg's async
  connection when asyncpg is missing) under uvloop, as in pgqueuer's own benchmark; an async
  no-op entrypoint; `run(mode=drain)` at its default batch size (10) or at a given one. Its
  schema is installed with `Queries.install()` at its default durability (every table
  logged).
- procrastinate: an App on its PsycopgConnector; an async no-op task;
  `run_worker_async(wait=False)` at its defaults (concurrency 1; it returns once the queue is
  empty); its schema applied with `schema_manager.apply_schema_async()`. It has no batch
  size: every job is fetched by one call of its fetch procedure.

Drains are timed like ours: every worker process is set up before the clock starts; the clock
stops when the last process has drained the queue. Latency: a producer thread at a fixed rate,
one transaction per job, while the consumer idle-waits with LISTEN/NOTIFY; from the commit to
the start of the task, p50, p99 and max. With a Meter, the fill is its "enqueue" phase and
the measured part its "drain" (or "latency") phase.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import math
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any

import psycopg

from bench._common import ChildChannel, latency_figures, per_second, run_processes
from bench.meter import Meter
from bench.meter import phase as metered

PEERS = ("pgqueuer", "procrastinate")
FILL_CHUNK = 10_000
#: pgqueuer's own default batch size (PgQueuer.run's batch_size), said in the results.
PGQ_DEFAULT_BATCH = 10


def availability() -> dict[str, str | None]:
    """Per peer: None when it can run here, else why not."""
    found: dict[str, str | None] = {}
    for name in PEERS:
        if importlib.util.find_spec(name) is None:
            found[name] = f"{name} is not installed (pip install -e '.[bench]')"
        else:
            found[name] = None
    return found


def version(name: str) -> str:
    from importlib.metadata import version as installed

    return installed(name)


def _run_async(main: Coroutine[Any, Any, Any], *, uvloop: bool = False) -> Any:
    if uvloop and importlib.util.find_spec("uvloop") is not None:
        import uvloop as uv

        return uv.run(main)
    return asyncio.run(main)


def _count(dsn: str, sql: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(sql).fetchone()  # type: ignore[arg-type,unused-ignore]
    return int(row[0]) if row else 0


# -- pgqueuer ----------------------------------------------------------------------------------


def pgq_driver_name() -> str:
    return "asyncpg" if importlib.util.find_spec("asyncpg") is not None else "psycopg"


async def _pgq_driver(dsn: str) -> tuple[Any, Any]:
    """(driver, connection) on a new connection."""
    if pgq_driver_name() == "asyncpg":
        import asyncpg
        from pgqueuer import AsyncpgDriver

        conn = await asyncpg.connect(dsn=dsn)
        return AsyncpgDriver(conn), conn
    from pgqueuer import PsycopgDriver

    aconn = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
    return PsycopgDriver(aconn), aconn


async def _pgq_clear(dsn: str, *, install: bool = True) -> None:
    """Install pgqueuer's schema if needed; empty its queue, log and statistics (TRUNCATE)."""
    from pgqueuer import Queries

    driver, conn = await _pgq_driver(dsn)
    try:
        queries = Queries(driver)
        if install and not await queries.schema_is_installed():
            await queries.install()
        await queries.clear_queue()
        await queries.clear_queue_log()
        await queries.clear_statistics_log()
    finally:
        await conn.close()


async def _pgq_fill(dsn: str, jobs: int, entrypoint: str) -> None:
    from pgqueuer import Queries

    driver, conn = await _pgq_driver(dsn)
    try:
        queries = Queries(driver)
        left = jobs
        while left > 0:
            size = min(FILL_CHUNK, left)
            await queries.enqueue([entrypoint] * size, [None] * size, [0] * size)
            left -= size
    finally:
        await conn.close()


def pgq_cleanup(dsn: str) -> None:
    """What a pgqueuer run left, gone: no dead rows for autovacuum during the next run."""
    _run_async(_pgq_clear(dsn, install=False))


def pgq_worker_process(dsn: str, batch: int | None, *, channel: ChildChannel) -> None:
    async def main() -> None:
        from pgqueuer import PgQueuer
        from pgqueuer.types import QueueExecutionMode

        driver, conn = await _pgq_driver(dsn)
        pgq = PgQueuer(driver)

        @pgq.entrypoint("noop")
        async def noop(job: Any) -> None:
            pass

        channel.report("ready")
        await asyncio.to_thread(channel.go.wait)
        if batch is None:
            await pgq.run(mode=QueueExecutionMode.drain)
        else:
            await pgq.run(batch_size=batch, mode=QueueExecutionMode.drain)
        channel.report("done")
        await asyncio.to_thread(channel.stop.wait)
        await conn.close()

    _run_async(main(), uvloop=True)
    channel.report("stopped")


def pgq_drain(
    dsn: str,
    jobs: int,
    *,
    batch: int | None = None,
    processes: int = 1,
    timeout: float = 900.0,
    meter: Meter | None = None,
) -> dict[str, Any]:
    """`jobs` no-op jobs drained by pgqueuer; `batch` None: its default."""
    _run_async(_pgq_clear(dsn))
    with metered(meter, "enqueue"):
        _run_async(_pgq_fill(dsn, jobs, "noop"))
    with metered(meter, "drain"):
        run = run_processes(pgq_worker_process, (dsn, batch), processes, timeout=timeout)
    left = _count(dsn, "SELECT count(*) FROM pgqueuer")
    if left:
        raise RuntimeError(f"pgqueuer's drain left {left} jobs in its queue")
    pgq_cleanup(dsn)
    return {
        "jobs": jobs,
        "processes": processes,
        "batch": PGQ_DEFAULT_BATCH if batch is None else batch,
        "driver": pgq_driver_name(),
        "seconds": round(run.seconds, 3),
        "jobs_per_s": per_second(jobs, run.seconds),
    }


def pgq_latency(
    dsn: str, *, rate: float, seconds: float, warmup: float, meter: Meter | None = None
) -> dict[str, Any]:
    """Pickup latency with PgQueuer at its defaults; the producer is pgqueuer's SyncQueries."""
    from pgqueuer import PgQueuer
    from pgqueuer.db import SyncPsycopgDriver
    from pgqueuer.queries import SyncQueries

    _run_async(_pgq_clear(dsn))
    started: dict[int, float] = {}
    holder: dict[str, Any] = {}
    ready = threading.Event()

    async def consume() -> None:
        driver, conn = await _pgq_driver(dsn)
        pgq = PgQueuer(driver)

        @pgq.entrypoint("latency")
        async def latency(job: Any) -> None:
            started[int(job.payload)] = time.perf_counter()

        holder["pgq"], holder["loop"] = pgq, asyncio.get_running_loop()
        ready.set()
        try:
            await pgq.run()
        finally:
            await conn.close()

    def stop() -> None:
        holder["loop"].call_soon_threadsafe(holder["pgq"].shutdown.set)

    with metered(meter, "latency"), psycopg.connect(dsn, autocommit=True) as conn:
        queries = SyncQueries(SyncPsycopgDriver(conn))
        result = _latency_run(
            lambda: _run_async(consume(), uvloop=True),
            ready,
            stop,
            lambda n: queries.enqueue("latency", str(n).encode()),
            started,
            rate=rate,
            seconds=seconds,
            warmup=warmup,
        )
    pgq_cleanup(dsn)
    return result | {"batch": PGQ_DEFAULT_BATCH, "driver": pgq_driver_name()}


# -- procrastinate -----------------------------------------------------------------------------


def _proc_app(dsn: str) -> Any:
    import procrastinate

    return procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=dsn))


def proc_cleanup(dsn: str) -> None:
    """procrastinate's schema installed if needed, and its jobs (and events) gone."""

    async def main() -> None:
        app = _proc_app(dsn)
        async with app.open_async():
            with psycopg.connect(dsn, autocommit=True) as conn:
                installed = conn.execute("SELECT to_regclass('procrastinate_jobs')").fetchone()
                if not installed or installed[0] is None:
                    await app.schema_manager.apply_schema_async()
                conn.execute("TRUNCATE procrastinate_jobs CASCADE")

    _run_async(main())


async def _proc_fill(dsn: str, jobs: int, queue: str) -> None:
    app = _proc_app(dsn)
    async with app.open_async():
        deferrer = app.configure_task("noop", queue=queue)
        left = jobs
        while left > 0:
            size = min(FILL_CHUNK, left)
            await deferrer.batch_defer_async(*({} for _ in range(size)))
            left -= size


def proc_worker_process(dsn: str, concurrency: int | None, *, channel: ChildChannel) -> None:
    async def main() -> None:
        app = _proc_app(dsn)

        @app.task(name="noop", queue="bench")
        async def noop() -> None:
            pass

        options: dict[str, Any] = {"queues": ["bench"], "wait": False}
        if concurrency is not None:
            options["concurrency"] = concurrency
        async with app.open_async():
            channel.report("ready")
            await asyncio.to_thread(channel.go.wait)
            await app.run_worker_async(install_signal_handlers=False, **options)
            channel.report("done")
            await asyncio.to_thread(channel.stop.wait)

    _run_async(main())
    channel.report("stopped")


def proc_drain(
    dsn: str,
    jobs: int,
    *,
    processes: int = 1,
    concurrency: int | None = None,
    timeout: float = 900.0,
    meter: Meter | None = None,
) -> dict[str, Any]:
    """`jobs` no-op jobs drained by procrastinate; `concurrency` None: its default (1)."""
    proc_cleanup(dsn)
    with metered(meter, "enqueue"):
        _run_async(_proc_fill(dsn, jobs, "bench"))
    with metered(meter, "drain"):
        run = run_processes(proc_worker_process, (dsn, concurrency), processes, timeout=timeout)
    left = _count(dsn, "SELECT count(*) FROM procrastinate_jobs WHERE status IN ('todo', 'doing')")
    if left:
        raise RuntimeError(f"procrastinate's drain left {left} jobs waiting or running")
    proc_cleanup(dsn)
    return {
        "jobs": jobs,
        "processes": processes,
        "concurrency": 1 if concurrency is None else concurrency,
        "batch": "n/a (one job per fetch)",
        "seconds": round(run.seconds, 3),
        "jobs_per_s": per_second(jobs, run.seconds),
    }


def proc_latency(
    dsn: str, *, rate: float, seconds: float, warmup: float, meter: Meter | None = None
) -> dict[str, Any]:
    """Pickup latency with procrastinate's worker at its defaults (concurrency 1)."""
    import procrastinate

    proc_cleanup(dsn)
    started: dict[int, float] = {}
    holder: dict[str, Any] = {}
    ready = threading.Event()

    async def consume() -> None:
        app = _proc_app(dsn)

        @app.task(name="latency_noop", queue="latency")
        async def latency_noop(n: int) -> None:
            started[n] = time.perf_counter()

        async with app.open_async():
            task = asyncio.ensure_future(
                app.run_worker_async(queues=["latency"], install_signal_handlers=False)
            )
            holder["task"], holder["loop"] = task, asyncio.get_running_loop()
            ready.set()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def stop() -> None:
        holder["loop"].call_soon_threadsafe(holder["task"].cancel)

    with metered(meter, "latency"):
        producer = procrastinate.App(connector=procrastinate.SyncPsycopgConnector(conninfo=dsn))
        with producer.open():
            deferrer = producer.configure_task("latency_noop", queue="latency")
            result = _latency_run(
                lambda: _run_async(consume()),
                ready,
                stop,
                lambda n: deferrer.defer(n=n),
                started,
                rate=rate,
                seconds=seconds,
                warmup=warmup,
            )
    proc_cleanup(dsn)
    return result | {"concurrency": 1}


# -- shared ------------------------------------------------------------------------------------


def _latency_run(
    consumer: Callable[[], Any],
    ready: threading.Event,
    stop: Callable[[], None],
    enqueue: Callable[[int], Any],
    started: dict[int, float],
    *,
    rate: float,
    seconds: float,
    warmup: float,
) -> dict[str, Any]:
    """Run `consumer` in a thread, enqueue at `rate` for warmup + seconds, one transaction per
    job; the latencies of the jobs after the warm-up."""
    errors: list[BaseException] = []

    def run_consumer() -> None:
        try:
            consumer()
        except BaseException as exc:
            errors.append(exc)
            ready.set()

    thread = threading.Thread(target=run_consumer, daemon=True)
    thread.start()
    if not ready.wait(30) or errors:
        raise RuntimeError(f"the consumer did not start: {errors[:1]}")
    time.sleep(0.2)  # its LISTEN: the peers expose no "listening" event to wait for
    committed: dict[int, float] = {}
    total = math.ceil((warmup + seconds) * rate)
    skip = math.ceil(warmup * rate)
    began = time.perf_counter()
    for n in range(total):
        delay = began + n / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        enqueue(n)
        committed[n] = time.perf_counter()
    produced = time.perf_counter() - began
    deadline = time.monotonic() + 30
    while len(started) < total and time.monotonic() < deadline:
        time.sleep(0.05)
    stop()
    thread.join(timeout=30)
    if errors:
        raise RuntimeError(f"the consumer failed: {errors[0]!r}")
    latencies = [(started[n] - committed[n]) * 1000 for n in range(skip, total) if n in started]
    return {
        "target_rate": rate,
        "achieved_rate": round(total / produced, 1),
        "jobs": total,
        "jobs_measured": len(latencies),
        "jobs_not_started": total - len(started),
    } | latency_figures(latencies)
