"""bulk enqueue: jobs/s through PostgresStore.enqueue_jobs.

The rows (NewJob values) are built before the clock starts; what is timed is the store's
insert path. Each run enqueues N jobs in calls of `batch` jobs (one transaction and one NOTIFY
per call, batch_size=`batch`), and one run puts all N in a single call. The store writes a call
of COPY_THRESHOLD or more jobs without unique keys through COPY, smaller ones (and versions of
the store without COPY) through multi-row INSERTs of `batch_size` rows; each run names its path.
"""

from __future__ import annotations

import time
from typing import Any

from bench._common import new_jobs, per_second, reset
from joobq_sql import PostgresStore
from joobq_sql.store.postgres import store as store_module

COPY_THRESHOLD: int | None = getattr(store_module, "COPY_THRESHOLD", None)


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


def run(url: str, jobs: int, batch_sizes: tuple[int, ...] = (1000, 5000)) -> dict[str, Any]:
    store = PostgresStore(url, pool_size=1)
    results = []
    try:
        store.enqueue_jobs(list(new_jobs(min(jobs, 1000))), batch_size=1000)  # warm the pool
        for batch in (*batch_sizes, jobs):
            reset(url)
            rows = list(new_jobs(jobs))
            started = time.perf_counter()
            for start in range(0, jobs, batch):
                store.enqueue_jobs(rows[start : start + batch], batch_size=batch)
            seconds = time.perf_counter() - started
            results.append(
                {
                    "batch_size": batch,
                    "calls": -(-jobs // batch),
                    "path": path(min(batch, jobs)),
                    "jobs": jobs,
                    "seconds": round(seconds, 3),
                    "jobs_per_s": per_second(jobs, seconds),
                }
            )
    finally:
        store.close()
    best = max(results, key=lambda r: r["jobs_per_s"])
    return {"runs": results, "jobs_per_s": best["jobs_per_s"], "copy": copy_note()}
