"""single enqueue: one transaction per job through Job.enqueue, from a warm pool; the time of
each call (it returns after COMMIT and the NOTIFY), p50 and p99 in ms, and the jobs/s of the
whole series (one thread)."""

from __future__ import annotations

import time
from typing import Any

from bench._common import QUEUE, NoopJob, latency_figures, per_second, reset
from joobq_sql import JoobQ, PostgresStore

WARMUP = 50


def run(url: str, jobs: int) -> dict[str, Any]:
    reset(url)
    store = PostgresStore(url, pool_size=2)
    app = JoobQ(store=store)
    app.queue(QUEUE, jobs=[NoopJob])  # NoopJob.enqueue goes through this application
    try:
        for _ in range(WARMUP):
            NoopJob.enqueue()
        times = []
        started = time.perf_counter()
        for _ in range(jobs):
            before = time.perf_counter()
            NoopJob.enqueue()
            times.append((time.perf_counter() - before) * 1000)
        seconds = time.perf_counter() - started
    finally:
        app.close()
    return {
        "jobs": jobs,
        "warmup": WARMUP,
        "seconds": round(seconds, 3),
        "jobs_per_s": per_second(jobs, seconds),
        **latency_figures(times),
    }
