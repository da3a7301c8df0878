"""peers: the drain and pickup-latency workloads run through pgqueuer and procrastinate, each
through its documented API, in the same run as ours (install them with the `bench` extra).

- pgqueuer: a PgQueuer per worker process on one asyncpg connection (psycopg's async
  connection when asyncpg is missing), uvloop as in its own benchmark, an async no-op
  entrypoint, `run(batch_size=<our batch>, mode=drain)` for the drain; its schema installed
  with `Queries.install()` at its default (durable) settings.
- procrastinate: an App on its PsycopgConnector, an async no-op task,
  `run_worker_async(concurrency=<our threads>, wait=False)` for the drain (it returns once the
  queue is empty); its schema applied with `schema_manager.apply_schema_async()`. It has no
  batch size: every job is fetched by one call of its fetch procedure.

Drains are timed like ours: every worker process is set up before the clock starts; the clock
stops when the last process has drained the queue. Latency: a producer thread at the same
fixed rate, one transaction per job, while the consumer idle-waits with LISTEN/NOTIFY; commit
to the start of the task, p50, p99 and max.
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

from bench._common import ChildChannel, latency_figures, libpq, per_second, run_processes

PEERS = ("pgqueuer", "procrastinate")
FILL_CHUNK = 10_000


def availability() -> dict[str, str | None]:
    """Per peer: None when it can run here, else why not."""
    found: dict[str, str | None] = {}
    for name in PEERS:
        if importlib.util.find_spec(name) is None:
            found[name] = f"{name} is not installed (pip install -e '.[bench]')"
        else:
            found[name] = None
    return found


def _version(name: str) -> str:
    from importlib.metadata import version

    return version(name)


def _run_async(main: Coroutine[Any, Any, Any], *, uvloop: bool = False) -> Any:
    if uvloop and importlib.util.find_spec("uvloop") is not None:
        import uvloop as uv

        return uv.run(main)
    return asyncio.run(main)


# -- pgqueuer ----------------------------------------------------------------------------------


def _pgq_driver_name() -> str:
    return "asyncpg" if importlib.util.find_spec("asyncpg") is not None else "psycopg"


async def _pgq_driver(dsn: str) -> Any:
    if _pgq_driver_name() == "asyncpg":
        import asyncpg
        from pgqueuer import AsyncpgDriver

        return AsyncpgDriver(await asyncpg.connect(dsn=dsn))
    from pgqueuer import PsycopgDriver

    return PsycopgDriver(await psycopg.AsyncConnection.connect(dsn, autocommit=True))


async def _pgq_prepare(dsn: str, jobs: int, entrypoint: str) -> None:
    from pgqueuer import Queries

    queries = Queries(await _pgq_driver(dsn))
    if not await queries.schema_is_installed():
        await queries.install()
    await queries.clear_queue()
    await queries.clear_queue_log()
    await queries.clear_statistics_log()
    left = jobs
    while left > 0:
        size = min(FILL_CHUNK, left)
        await queries.enqueue([entrypoint] * size, [None] * size, [0] * size)
        left -= size


def pgq_worker_process(dsn: str, batch: int, *, channel: ChildChannel) -> None:
    async def main() -> None:
        from pgqueuer import PgQueuer
        from pgqueuer.types import QueueExecutionMode

        pgq = PgQueuer(await _pgq_driver(dsn))

        @pgq.entrypoint("noop")
        async def noop(job: Any) -> None:
            pass

        channel.report("ready")
        await asyncio.to_thread(channel.go.wait)
        await pgq.run(batch_size=batch, mode=QueueExecutionMode.drain)
        channel.report("done")
        await asyncio.to_thread(channel.stop.wait)

    _run_async(main(), uvloop=True)
    channel.report("stopped")


def pgq_drain(dsn: str, jobs: int, *, processes: int, batch: int, timeout: float) -> dict[str, Any]:
    _run_async(_pgq_prepare(dsn, jobs, "noop"))
    run = run_processes(pgq_worker_process, (dsn, batch), processes, timeout=timeout)
    left = _count(dsn, "SELECT count(*) FROM pgqueuer")
    if left:
        raise RuntimeError(f"pgqueuer's drain left {left} jobs in its queue")
    return {
        "jobs": jobs,
        "processes": processes,
        "batch": batch,
        "driver": _pgq_driver_name(),
        "seconds": round(run.seconds, 3),
        "jobs_per_s": per_second(jobs, run.seconds),
    }


def pgq_latency(
    dsn: str, *, rate: float, seconds: float, warmup: float, batch: int
) -> dict[str, Any]:
    from pgqueuer import PgQueuer
    from pgqueuer.db import SyncPsycopgDriver
    from pgqueuer.queries import SyncQueries

    _run_async(_pgq_prepare(dsn, 0, "latency"))
    started: dict[int, float] = {}
    holder: dict[str, Any] = {}
    ready = threading.Event()

    async def consume() -> None:
        pgq = PgQueuer(await _pgq_driver(dsn))

        @pgq.entrypoint("latency")
        async def latency(job: Any) -> None:
            started[int(job.payload)] = time.perf_counter()

        holder["pgq"], holder["loop"] = pgq, asyncio.get_running_loop()
        ready.set()
        await pgq.run(batch_size=batch)

    def stop() -> None:
        holder["loop"].call_soon_threadsafe(holder["pgq"].shutdown.set)

    with psycopg.connect(dsn, autocommit=True) as conn:
        queries = SyncQueries(SyncPsycopgDriver(conn))
        return _latency_run(
            lambda: _run_async(consume(), uvloop=True),
            ready,
            stop,
            lambda n: queries.enqueue("latency", str(n).encode()),
            started,
            rate=rate,
            seconds=seconds,
            warmup=warmup,
        ) | {"batch": batch, "driver": _pgq_driver_name()}


# -- procrastinate -----------------------------------------------------------------------------


def _proc_app(dsn: str) -> Any:
    import procrastinate

    return procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=dsn))


async def _proc_prepare(dsn: str, jobs: int, queue: str) -> None:
    app = _proc_app(dsn)
    async with app.open_async():
        with psycopg.connect(dsn, autocommit=True) as conn:
            installed = conn.execute("SELECT to_regclass('procrastinate_jobs')").fetchone()
            if not installed or installed[0] is None:
                await app.schema_manager.apply_schema_async()
            conn.execute("TRUNCATE procrastinate_jobs CASCADE")
        deferrer = app.configure_task("noop", queue=queue)
        left = jobs
        while left > 0:
            size = min(FILL_CHUNK, left)
            await deferrer.batch_defer_async(*({} for _ in range(size)))
            left -= size


def proc_worker_process(dsn: str, concurrency: int, *, channel: ChildChannel) -> None:
    async def main() -> None:
        app = _proc_app(dsn)

        @app.task(name="noop", queue="bench")
        async def noop() -> None:
            pass

        async with app.open_async():
            channel.report("ready")
            await asyncio.to_thread(channel.go.wait)
            await app.run_worker_async(
                queues=["bench"],
                concurrency=concurrency,
                wait=False,
                install_signal_handlers=False,
            )
            channel.report("done")
            await asyncio.to_thread(channel.stop.wait)

    _run_async(main())
    channel.report("stopped")


def proc_drain(
    dsn: str, jobs: int, *, processes: int, concurrency: int, timeout: float
) -> dict[str, Any]:
    _run_async(_proc_prepare(dsn, jobs, "bench"))
    run = run_processes(proc_worker_process, (dsn, concurrency), processes, timeout=timeout)
    left = _count(dsn, "SELECT count(*) FROM procrastinate_jobs WHERE status IN ('todo', 'doing')")
    if left:
        raise RuntimeError(f"procrastinate's drain left {left} jobs waiting or running")
    return {
        "jobs": jobs,
        "processes": processes,
        "concurrency": concurrency,
        "batch": "n/a (one job per fetch)",
        "seconds": round(run.seconds, 3),
        "jobs_per_s": per_second(jobs, run.seconds),
    }


def proc_latency(
    dsn: str, *, rate: float, seconds: float, warmup: float, concurrency: int
) -> dict[str, Any]:
    import procrastinate

    _run_async(_proc_prepare(dsn, 0, "latency"))
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
                app.run_worker_async(
                    queues=["latency"],
                    concurrency=concurrency,
                    wait=True,
                    install_signal_handlers=False,
                )
            )
            holder["task"], holder["loop"] = task, asyncio.get_running_loop()
            ready.set()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def stop() -> None:
        holder["loop"].call_soon_threadsafe(holder["task"].cancel)

    producer = procrastinate.App(connector=procrastinate.SyncPsycopgConnector(conninfo=dsn))
    with producer.open():
        deferrer = producer.configure_task("latency_noop", queue="latency")
        return _latency_run(
            lambda: _run_async(consume()),
            ready,
            stop,
            lambda n: deferrer.defer(n=n),
            started,
            rate=rate,
            seconds=seconds,
            warmup=warmup,
        ) | {"concurrency": concurrency}


# -- shared ------------------------------------------------------------------------------------


def _count(dsn: str, sql: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(sql).fetchone()  # type: ignore[arg-type]
    return int(row[0]) if row else 0


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
    time.sleep(0.2)  # its LISTEN
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
        "jobs_measured": len(latencies),
        "jobs_not_started": total - len(started),
    } | latency_figures(latencies)


def run(
    databases: Callable[[str], str],
    *,
    jobs: int,
    processes: int,
    threads: int,
    batch: int,
    latency_batch: int,
    latency_workers: int,
    rate: float,
    seconds: float,
    warmup: float,
    timeout: float,
) -> dict[str, Any]:
    """Every available peer's drain and latency; `databases(name)` gives a peer its database
    (a libpq URL)."""
    results: dict[str, Any] = {}
    for name, reason in availability().items():
        if reason is not None:
            results[name] = {"skipped": reason}
            continue
        dsn = libpq(databases(name))
        entry: dict[str, Any] = {"version": _version(name)}
        try:
            if name == "pgqueuer":
                entry["drain"] = pgq_drain(
                    dsn, jobs, processes=processes, batch=batch, timeout=timeout
                )
                entry["latency"] = pgq_latency(
                    dsn, rate=rate, seconds=seconds, warmup=warmup, batch=latency_batch
                )
            else:
                entry["drain"] = proc_drain(
                    dsn, jobs, processes=processes, concurrency=threads, timeout=timeout
                )
                entry["latency"] = proc_latency(
                    dsn, rate=rate, seconds=seconds, warmup=warmup, concurrency=latency_workers
                )
        except Exception as exc:
            entry["skipped"] = f"failed to run here: {type(exc).__name__}: {exc}"
        results[name] = entry
    return results
