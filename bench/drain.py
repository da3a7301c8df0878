"""drain: N pre-enqueued no-op jobs processed by P worker processes of a JoobQ application, each
running one queue with T workers; jobs/s from the start of the workers until the queue's
`completed` total reaches N.

Each worker process is spawned, imports joobq_sql, builds its application and opens a
connection before the clock starts, so interpreter start-up is not counted; starting the
workers (LISTEN, first claim) is.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import psycopg

from bench._common import (
    QUEUE,
    ChildChannel,
    NoopJob,
    analyze,
    completed_total,
    fill,
    libpq,
    per_second,
    reset,
    run_processes,
    window_rates,
)
from joobq_sql import JoobQ, PostgresStore
from joobq_sql.settings import SETTING_NAMES, Settings


@dataclasses.dataclass(frozen=True)
class DrainOptions:
    processes: int = 1
    threads: int = 16
    batch: int = 1000
    #: None: the Settings default (or no such setting in this version).
    prefetch: int | None = None
    timeout: float = 900.0


def supports_prefetch() -> bool:
    return "prefetch" in SETTING_NAMES


def app_settings(url: str, options: DrainOptions) -> dict[str, Any]:
    """The JoobQ keyword settings of a drain worker process."""
    settings: dict[str, Any] = {"database_url": url, "worker_batch_size": options.batch}
    if options.prefetch is not None and supports_prefetch():
        settings["prefetch"] = options.prefetch
    return settings


def describe_settings(url: str, options: DrainOptions) -> dict[str, Any]:
    """The settings a drain worker runs with, as the application sees them."""
    settings, _ = Settings.build(**app_settings(url, options))
    described = settings.describe()
    described.pop("database_url", None)
    described["prefetch"] = described.get("prefetch", "not a setting of this version")
    return described


def worker_process(url: str, options: DrainOptions, *, channel: ChildChannel) -> None:
    """One drain worker process: build the app, report ready, run from `go` until `stop`."""
    import logging

    logging.basicConfig(level=logging.WARNING)
    app = JoobQ(**app_settings(url, options))
    app.queue(QUEUE, workers=options.threads, jobs=[NoopJob])
    app.store.now()  # connect now, not on the clock
    channel.report("ready")
    channel.go.wait()
    worker = app.start()
    channel.stop.wait()
    counters = {name: dict(runner.counters) for name, runner in worker.runners.items()}
    flushes = getattr(worker.acker, "flushes", None)
    worker.stop(grace=10)
    app.close()
    channel.report("stopped", {"counters": counters, "acker_flushes": flushes})


def drain(
    url: str,
    jobs: int,
    options: DrainOptions,
    *,
    window: int | None = None,
    before_start: Callable[[], None] | None = None,
    on_poll: Callable[[float], None] | None = None,
    poll: float = 0.02,
) -> dict[str, Any]:
    """Fill the queue with `jobs` no-op jobs and drain them; return the figures.

    `window`: also report the throughput of every `window` jobs. `before_start` runs once the
    table is filled, just before the workers start; `on_poll` with the seconds elapsed at each
    progress poll.
    """
    reset(url)
    store = PostgresStore(url, pool_size=1)
    try:
        fill(store, jobs)
    finally:
        store.close()
    analyze(url)
    if before_start is not None:
        before_start()
    with psycopg.connect(libpq(url), autocommit=True) as conn:
        run = run_processes(
            worker_process,
            (url, options),
            options.processes,
            progress=lambda: completed_total(conn),
            goal=jobs,
            timeout=options.timeout,
            poll=poll,
            on_poll=on_poll,
        )
    store = PostgresStore(url, pool_size=1)
    try:
        stats = store.queue_stats().get(QUEUE)
    finally:
        store.close()
    result: dict[str, Any] = {
        "jobs": jobs,
        "processes": options.processes,
        "threads": options.threads,
        "batch": options.batch,
        "prefetch": options.prefetch if supports_prefetch() else None,
        "seconds": round(run.seconds, 3),
        "jobs_per_s": per_second(jobs, run.seconds),
        "queue_stats_after": None
        if stats is None
        else {
            "waiting": stats.waiting,
            "running": stats.running,
            "completed_total": stats.totals.get("completed", 0),
        },
        "workers": run.stopped,
    }
    if window:
        result["windows"] = window_rates(run.samples, jobs, window)
    return result


def run(url: str, jobs: int, options: DrainOptions, prefetches: list[int | None]) -> dict[str, Any]:
    """The drain workload: one drain per prefetch value; `best` names the fastest."""
    runs = []
    for prefetch in prefetches:
        chosen = dataclasses.replace(options, prefetch=prefetch)
        result = drain(url, jobs, chosen)
        result["settings"] = describe_settings(url, chosen)
        runs.append(result)
    best = max(runs, key=lambda r: r["jobs_per_s"])
    return {"runs": runs, "best": best, "jobs_per_s": best["jobs_per_s"]}
