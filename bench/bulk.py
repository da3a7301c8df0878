"""bulk enqueue: jobs/s of the store's primitive, of the public API, and of pgqueuer.

- primitive: `PostgresStore.enqueue_jobs` of NewJob rows built before the clock starts: the
  very rows the public path writes for NoopJob (app.new_jobs, so the same expiry and the same
  kind of jid: the comparison is of the Job -> row path alone); N jobs in calls of `batch`
  jobs (one transaction and one NOTIFY per call, batch_size=`batch`), and one run with all N
  in a single call. The store writes a call of COPY_THRESHOLD or more jobs without unique
  keys through COPY, smaller ones through multi-row INSERTs; each run names its path.
- public: the same N jobs as built NoopJob instances (built before the clock: what is timed is
  the Job -> row path and the insert), through `NoopJob.batch_enqueue` and `app.enqueue_many`
  in calls of PUBLIC_BATCH jobs, the call a user makes.
- pgqueuer, when installed: ``Queries.enqueue`` of PUBLIC_BATCH jobs per call, on one asyncpg
  connection under uvloop.

Every series runs `repetitions` times, alternated, each on an emptied table; medians are
reported with min and max. `public_to_primitive` and `public_to_pgqueuer` compare the public
path at PUBLIC_BATCH with the primitive and with pgqueuer at the same call size.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

from bench._common import QUEUE, NoopJob, libpq, new_jobs, per_second, reset
from bench.single import pgqueuer_available, pgqueuer_queries, run_async
from joobq_sql import JoobQ, NewJob, PostgresStore
from joobq_sql.store.postgres import store as store_module

COPY_THRESHOLD: int | None = getattr(store_module, "COPY_THRESHOLD", None)

#: Jobs per call of the public API and of pgqueuer (the issue's "1,000 built jobs per call").
PUBLIC_BATCH = 1000
REPETITIONS = 3


def path(batch: int) -> str:
    if COPY_THRESHOLD is not None and batch >= COPY_THRESHOLD:
        return "COPY"
    return "multi-row INSERT"


def copy_note() -> str:
    if COPY_THRESHOLD is None:
        return "COPY is not implemented by this version of PostgresStore: multi-row INSERT only"
    return (
        f"enqueue_jobs uses COPY for calls of {COPY_THRESHOLD}+ jobs without unique keys, "
        "multi-row INSERT below that"
    )


def run(
    url: str,
    jobs: int,
    batch_sizes: tuple[int, ...] = (1000, 5000),
    *,
    repetitions: int = REPETITIONS,
) -> dict[str, Any]:
    store = PostgresStore(url, pool_size=1)
    app = JoobQ(store=store)
    app.queue(QUEUE, jobs=[NoopJob])
    peer = pgqueuer_available()
    batches = (*batch_sizes, jobs)
    primitive: dict[int, list[float]] = {batch: [] for batch in batches}
    public: dict[str, list[float]] = {"Job.batch_enqueue": [], "app.enqueue_many": []}
    pgqueuer: list[float] = []
    public_batch = min(PUBLIC_BATCH, jobs)
    try:
        store.enqueue_jobs(list(new_jobs(min(jobs, 1000))), batch_size=1000)  # warm the pool
        for _ in range(repetitions):
            for batch in batches:
                rows = prebuilt_rows(app, jobs)
                primitive[batch].append(_timed(url, rows, batch, store.enqueue_jobs))
            built = [NoopJob() for _ in range(jobs)]
            public["Job.batch_enqueue"].append(
                _timed(url, built, public_batch, NoopJob.batch_enqueue)
            )
            built = [NoopJob() for _ in range(jobs)]
            public["app.enqueue_many"].append(_timed(url, built, public_batch, app.enqueue_many))
            if peer is None:
                pgqueuer.append(pgqueuer_bulk(libpq(url), jobs, public_batch))
    finally:
        app.close()
    runs = [
        {
            "batch_size": batch,
            "calls": -(-jobs // batch),
            "path": path(min(batch, jobs)),
            "jobs": jobs,
            **_rates(primitive[batch]),
        }
        for batch in batches
    ]
    result: dict[str, Any] = {
        "runs": runs,
        "jobs_per_s": max(r["jobs_per_s"] for r in runs),
        "copy": copy_note(),
        "repetitions": repetitions,
        "public": {
            name: {"batch_size": public_batch, "path": path(public_batch), **_rates(rates)}
            for name, rates in public.items()
        },
    }
    base = statistics.median(primitive[batch_sizes[0]]) if batch_sizes else None
    if base and batch_sizes[0] == public_batch:
        result["public_to_primitive"] = {
            name: round(statistics.median(rates) / base, 2) for name, rates in public.items()
        }
    if peer is None:
        result["pgqueuer"] = {"batch_size": public_batch, **_rates(pgqueuer)}
        result["public_to_pgqueuer"] = {
            name: round(statistics.median(rates) / statistics.median(pgqueuer), 2)
            for name, rates in public.items()
        }
    else:
        result["pgqueuer"] = {"skipped": peer}
    return result


def prebuilt_rows(app: JoobQ, jobs: int) -> list[NewJob]:
    """The rows Job.batch_enqueue writes for `jobs` NoopJobs, as this version builds them."""
    built = [NoopJob() for _ in range(jobs)]
    new_rows = getattr(app, "new_jobs", None)  # older versions: one new_job per job
    return list(new_rows(built)) if new_rows else [app.new_job(job) for job in built]


def _timed(url: str, items: list[Any], batch: int, enqueue: Callable[..., Any]) -> float:
    """jobs/s of enqueueing `items` in calls of `batch`, on an emptied jobs table."""
    reset(url)
    started = time.perf_counter()
    for start in range(0, len(items), batch):
        enqueue(items[start : start + batch], batch_size=batch)
    return per_second(len(items), time.perf_counter() - started)


def _rates(rates: list[float]) -> dict[str, Any]:
    return {
        "jobs_per_s": round(statistics.median(rates), 1),
        "jobs_per_s_min": min(rates),
        "jobs_per_s_max": max(rates),
        "repetitions": rates,
    }


def pgqueuer_bulk(dsn: str, jobs: int, batch: int) -> float:
    """jobs/s of pgqueuer enqueueing `jobs` no-op jobs in calls of `batch`."""

    async def main() -> float:
        queries, connection = await pgqueuer_queries(dsn)
        try:
            await queries.enqueue(["noop"] * batch, [None] * batch, [0] * batch)  # warm up
            await queries.clear_queue()
            started = time.perf_counter()
            for start in range(0, jobs, batch):
                size = min(batch, jobs - start)
                await queries.enqueue(["noop"] * size, [None] * size, [0] * size)
            return per_second(jobs, time.perf_counter() - started)
        finally:
            await queries.clear_queue()
            await connection.close()

    rate: float = run_async(main())
    return rate
