"""single enqueue: one job per call, each call returning after its job is committed, from a
warm pool, one thread; the time of each call, p50 and p99 in ms, and the jobs/s of the series.

Three series, alternated `repetitions` times in one run (medians reported, with min and max):

- `Job.enqueue` (``NoopJob.enqueue()``), the public sync API at default settings;
- `await Job.enqueue_async`, the public async API (asyncio's default loop);
- pgqueuer, when installed: ``await Queries.enqueue("noop", None, 0)`` on one asyncpg
  connection under uvloop, as its own benchmark runs it; its tables sit beside ours in the
  same database.

The top-level `jobs_per_s`, `p50_ms` and `p99_ms` are the sync series' medians.
"""

from __future__ import annotations

import asyncio
import importlib.util
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

from bench._common import QUEUE, NoopJob, latency_figures, libpq, per_second, reset
from joobq_sql import JoobQ, PostgresStore

WARMUP = 50
REPETITIONS = 3


def run(url: str, jobs: int, *, repetitions: int = REPETITIONS) -> dict[str, Any]:
    reset(url)
    store = PostgresStore(url, pool_size=2)
    app = JoobQ(store=store)
    app.queue(QUEUE, jobs=[NoopJob])  # NoopJob.enqueue goes through this application
    peer = pgqueuer_available()
    series: dict[str, list[dict[str, Any]]] = {"sync": [], "async": []}
    if peer is None:
        series["pgqueuer"] = []
    try:
        for _ in range(repetitions):
            series["sync"].append(_timed(NoopJob.enqueue, jobs))
            series["async"].append(asyncio.run(_timed_async(app, jobs)))
            if peer is None:
                series["pgqueuer"].append(pgqueuer_single(libpq(url), jobs))
            reset(url, vacuum=False)
    finally:
        app.close()
    summary = {name: _summary(runs) for name, runs in series.items()}
    result: dict[str, Any] = {
        "jobs": jobs,
        "warmup": WARMUP,
        "repetitions": repetitions,
        **{k: summary["sync"][k] for k in ("jobs_per_s", "p50_ms", "p99_ms")},
        "seconds": summary["sync"]["seconds"],
        "series": summary,
    }
    if peer is None:
        pgq = summary["pgqueuer"]
        result["to_pgqueuer"] = {
            name: {
                "rate": round(summary[name]["jobs_per_s"] / pgq["jobs_per_s"], 2),
                "p50": round(summary[name]["p50_ms"] / pgq["p50_ms"], 2),
            }
            for name in ("sync", "async")
        }
    else:
        result["pgqueuer"] = {"skipped": peer}
    return result


def _timed(enqueue: Callable[[], Any], jobs: int) -> dict[str, Any]:
    for _ in range(WARMUP):
        enqueue()
    times = []
    started = time.perf_counter()
    for _ in range(jobs):
        before = time.perf_counter()
        enqueue()
        times.append((time.perf_counter() - before) * 1000)
    return _figures(jobs, time.perf_counter() - started, times)


async def _timed_series(enqueue: Callable[[], Awaitable[Any]], jobs: int) -> dict[str, Any]:
    for _ in range(WARMUP):
        await enqueue()
    times = []
    started = time.perf_counter()
    for _ in range(jobs):
        before = time.perf_counter()
        await enqueue()
        times.append((time.perf_counter() - before) * 1000)
    return _figures(jobs, time.perf_counter() - started, times)


async def _timed_async(app: JoobQ, jobs: int) -> dict[str, Any]:
    try:
        return await _timed_series(NoopJob.enqueue_async, jobs)
    finally:
        await app.aclose()  # this loop's connections end with it


def _figures(jobs: int, seconds: float, times: list[float]) -> dict[str, Any]:
    return {
        "jobs": jobs,
        "seconds": round(seconds, 3),
        "jobs_per_s": per_second(jobs, seconds),
        **latency_figures(times),
    }


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over the repetitions (min and max of the rate beside them)."""
    rates = [r["jobs_per_s"] for r in runs]
    return {
        "jobs_per_s": round(statistics.median(rates), 1),
        "jobs_per_s_min": min(rates),
        "jobs_per_s_max": max(rates),
        "p50_ms": round(statistics.median(r["p50_ms"] for r in runs), 3),
        "p99_ms": round(statistics.median(r["p99_ms"] for r in runs), 3),
        "seconds": round(statistics.median(r["seconds"] for r in runs), 3),
        "runs": runs,
    }


# -- pgqueuer ----------------------------------------------------------------------------------


def pgqueuer_available() -> str | None:
    """None when pgqueuer (with asyncpg) can run here, else why not."""
    for name in ("pgqueuer", "asyncpg"):
        if importlib.util.find_spec(name) is None:
            return f"{name} is not installed (pip install -e '.[bench]')"
    return None


def run_async(main: Any) -> Any:
    """Run a coroutine under uvloop when it is installed (as pgqueuer's benchmark does)."""
    if importlib.util.find_spec("uvloop") is not None:
        import uvloop

        return uvloop.run(main)
    return asyncio.run(main)


async def pgqueuer_queries(dsn: str) -> tuple[Any, Any]:
    """pgqueuer's Queries on one asyncpg connection, its schema installed and its queue
    empty; and the connection (the caller closes it)."""
    import asyncpg
    from pgqueuer import AsyncpgDriver, Queries

    connection = await asyncpg.connect(dsn=dsn)
    queries = Queries(AsyncpgDriver(connection))
    if not await queries.schema_is_installed():
        await queries.install()
    await queries.clear_queue()
    return queries, connection


def pgqueuer_single(dsn: str, jobs: int) -> dict[str, Any]:
    """The same series through pgqueuer: one ``enqueue`` (one statement) per job."""

    async def main() -> dict[str, Any]:
        queries, connection = await pgqueuer_queries(dsn)
        try:
            return await _timed_series(lambda: queries.enqueue("noop", None, 0), jobs)
        finally:
            await queries.clear_queue()
            await connection.close()

    figures: dict[str, Any] = run_async(main())
    return figures
