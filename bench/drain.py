"""drain: N pre-enqueued no-op jobs processed by P worker processes of a JoobQ application, each
running one queue; jobs/s from the start of the workers until the queue's `completed` total
reaches N.

The application is built as a user builds it: `JoobQ(database_url=...)` and
`app.queue("bench", jobs=[NoopJob])`, with only the settings a DrainOptions names (None
leaves the library's default: DEFAULTS changes nothing, TUNED is the tuned drain).

Each worker process is forked from the fork server of bench._common.run_processes, builds its
application and opens a connection before the clock starts; starting the workers (LISTEN,
the first claim) is on the clock.
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
    completed_total,
    fill_queue,
    libpq,
    per_second,
    run_processes,
    window_rates,
)
from bench.meter import Meter
from joobq_sql import JoobQ, PostgresStore
from joobq_sql.settings import SETTING_NAMES, Settings


@dataclasses.dataclass(frozen=True)
class DrainOptions:
    """A drain's shape. None: the library's default (not passed at all)."""

    processes: int = 1
    #: the queue's `workers` (per process)
    threads: int | None = None
    #: worker_batch_size
    batch: int | None = None
    prefetch: int | None = None
    timeout: float = 900.0


#: Out of the box: nothing set.
DEFAULTS = DrainOptions()
#: The tuned drain of the issue: worker_batch_size 1000, prefetch 1000, 16 workers.
TUNED = DrainOptions(threads=16, batch=1000, prefetch=1000)


def supports_prefetch() -> bool:
    return "prefetch" in SETTING_NAMES


def app_settings(url: str, options: DrainOptions) -> dict[str, Any]:
    """The JoobQ keyword settings of a drain worker process."""
    settings: dict[str, Any] = {"database_url": url}
    if options.batch is not None:
        settings["worker_batch_size"] = options.batch
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


def describe(options: DrainOptions) -> str:
    """ "workers 16, batch 1000, prefetch 1000, 2 processes"; "defaults" when nothing is set."""
    parts = []
    if options.threads is not None:
        parts.append(f"workers={options.threads}")
    if options.batch is not None:
        parts.append(f"worker_batch_size={options.batch}")
    if options.prefetch is not None:
        parts.append(f"prefetch={options.prefetch}")
    shape = ", ".join(parts) or "defaults"
    if options.processes > 1:
        shape += f", {options.processes} processes"
    return shape


def worker_process(url: str, options: DrainOptions, *, channel: ChildChannel) -> None:
    """One drain worker process: build the app, report ready, run from `go` until `stop`."""
    import logging

    logging.basicConfig(level=logging.WARNING)
    app = JoobQ(**app_settings(url, options))
    if options.threads is None:
        definition = app.queue(QUEUE, jobs=[NoopJob])
    else:
        definition = app.queue(QUEUE, workers=options.threads, jobs=[NoopJob])
    app.store.now()  # connect now, not on the clock
    settings = app.settings
    channel.report(
        "ready",
        {
            "workers": definition.workers,
            "worker_batch_size": settings.worker_batch_size,
            "prefetch": getattr(settings, "prefetch", None),
        },
    )
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
    meter: Meter | None = None,
    worker: Callable[..., None] = worker_process,
    worker_args: tuple[Any, ...] | None = None,
) -> dict[str, Any]:
    """Fill the queue with `jobs` no-op jobs and drain them; return the figures.

    `window`: also report the throughput of every `window` jobs. `before_start` runs once the
    table is filled, just before the workers start; `on_poll` with the seconds elapsed at each
    progress poll. `meter`: its "enqueue" phase is the fill, its "drain" phase from just before
    the workers start until they have exited (the progress polls are not counted).
    `worker`, `worker_args`: each worker process's function and its arguments (worker_process
    with (url, options) by default); set what a worker should run with inside it, since the
    fork server that starts the processes keeps the environment of its own start.
    """
    fill_queue(url, jobs, meter)
    if before_start is not None:
        before_start()
    if meter is not None:
        meter.begin("drain")
    with psycopg.connect(libpq(url), autocommit=True) as conn:
        run = run_processes(
            worker,
            (url, options) if worker_args is None else worker_args,
            options.processes,
            progress=lambda: completed_total(conn),
            goal=jobs,
            timeout=options.timeout,
            poll=poll,
            on_poll=on_poll,
        )
    if meter is not None:
        meter.end(harness_commits=len(run.samples))  # one transaction per progress poll
    store = PostgresStore(url, pool_size=1)
    try:
        stats = store.queue_stats().get(QUEUE)
    finally:
        store.close()
    effective = run.ready[0] if run.ready else {}
    result: dict[str, Any] = {
        "jobs": jobs,
        "processes": options.processes,
        "threads": effective.get("workers", options.threads),
        "batch": effective.get("worker_batch_size", options.batch),
        "prefetch": effective.get("prefetch", options.prefetch),
        "settings_given": describe(options),
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
        "workers_ready": run.ready,  # what each worker process said it runs with
    }
    if window:
        result["windows"] = window_rates(run.samples, jobs, window)
    return result
