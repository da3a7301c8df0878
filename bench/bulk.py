"""bulk enqueue: jobs/s through PostgresStore.enqueue_jobs, for each batch size.

The rows (NewJob values) are built before the clock starts; what is timed is the store's
insert path: one transaction of multi-row INSERTs (unnest of arrays), `batch_size` rows per
statement, and one NOTIFY for the queue. COPY is not implemented by the store, so it is not
measured.
"""

from __future__ import annotations

import time
from typing import Any

from bench._common import new_jobs, per_second, reset
from joobq_sql import PostgresStore

COPY_NOTE = "COPY is not implemented by PostgresStore: multi-row INSERT only"


def run(url: str, jobs: int, batch_sizes: tuple[int, ...] = (1000, 5000)) -> dict[str, Any]:
    store = PostgresStore(url, pool_size=1)
    results = []
    try:
        store.enqueue_jobs(list(new_jobs(min(jobs, 1000))), batch_size=1000)  # warm the pool
        for batch in batch_sizes:
            reset(url)
            rows = list(new_jobs(jobs))
            started = time.perf_counter()
            store.enqueue_jobs(rows, batch_size=batch)
            seconds = time.perf_counter() - started
            results.append(
                {
                    "batch_size": batch,
                    "jobs": jobs,
                    "seconds": round(seconds, 3),
                    "jobs_per_s": per_second(jobs, seconds),
                }
            )
    finally:
        store.close()
    best = max(results, key=lambda r: r["jobs_per_s"])
    return {"runs": results, "jobs_per_s": best["jobs_per_s"], "copy": COPY_NOTE}
