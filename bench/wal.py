"""wal: what each step of a job's life writes, one step at a time, through the public API where
there is one:

1. `enqueue_single`: S jobs by `NoopJob.enqueue()`, one call (one transaction) each;
2. `enqueue_bulk`: N jobs by `NoopJob.batch_enqueue` of `batch` built jobs per call;
3. `claim`: all S + N claimed by `store.claim_jobs` of `batch` (as the runtime claims them);
4. `complete`: all of them completed by `store.complete_jobs`, one call per claimed batch.

Each step is a Meter phase of its own, so the WAL bytes, WAL records, full-page images and
commits per job of enqueue, claim and completion are read apart; a drain interleaves claims
and completions, so its own figures can only give their sum. The application is built at its
defaults (`JoobQ(database_url=...)`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from bench._common import QUEUE, NoopJob, per_second, reset
from bench.meter import Meter
from bench.meter import phase as metered
from joobq_sql import JoobQ

WORKER = "bench-wal"


def run(
    url: str,
    jobs: int,
    *,
    single_jobs: int,
    batch: int = 1000,
    meter: Meter | None = None,
) -> dict[str, Any]:
    reset(url)
    built = [NoopJob() for _ in range(jobs)]
    seconds: dict[str, float] = {}
    total = jobs + single_jobs

    def step(name: str, work: Callable[[JoobQ], Any]) -> Any:
        """`work(app)` as phase `name`, on an application of its own (closed within the
        phase, so that its sessions' statistics are in)."""
        with metered(meter, name):
            app = JoobQ(database_url=url)
            app.queue(QUEUE, jobs=[NoopJob])  # NoopJob's enqueues go through this app
            try:
                app.store.now()  # connect before the clock
                started = time.perf_counter()
                out = work(app)
                seconds[name] = time.perf_counter() - started
            finally:
                app.close()
        return out

    def enqueue_single(app: JoobQ) -> None:
        for _ in range(single_jobs):
            NoopJob.enqueue()

    def enqueue_bulk(app: JoobQ) -> None:
        for start in range(0, jobs, batch):
            NoopJob.batch_enqueue(built[start : start + batch], batch_size=batch)

    def claim(app: JoobQ) -> list[Any]:
        batches: list[Any] = []
        while True:
            claimed = app.store.claim_jobs(QUEUE, WORKER, batch)
            if not claimed:
                return batches
            batches.append([record.completion for record in claimed])

    step("enqueue_single", enqueue_single)
    step("enqueue_bulk", enqueue_bulk)
    claimed_batches: list[Any] = step("claim", claim)
    claimed = sum(len(b) for b in claimed_batches)
    completed = step(
        "complete", lambda app: sum(len(app.store.complete_jobs(c)) for c in claimed_batches)
    )
    if claimed != total or completed != total:
        raise RuntimeError(f"of {total} jobs, {claimed} were claimed and {completed} completed")
    reset(url, vacuum=False)
    phase_jobs = {
        "enqueue_single": single_jobs,
        "enqueue_bulk": jobs,
        "claim": total,
        "complete": total,
    }
    return {
        "jobs": total,
        "batch": batch,
        "phase_jobs": phase_jobs,
        "seconds": {name: round(s, 3) for name, s in seconds.items()},
        "step_jobs_per_s": {name: per_second(phase_jobs[name], s) for name, s in seconds.items()},
    }
