"""Pickup latency: time from an enqueue's COMMIT to the start of perform, p50 / p99 / max.

A benchmark, not a test: it prints a table, it asserts nothing. An in-process JoobQ application
runs one queue with --workers workers while a producer thread enqueues no-op jobs at a fixed
--rate for --seconds, one transaction per job. Two runs:

- notify: wake-ups by LISTEN/NOTIFY, with a 5 s poll, so a pickup can only come from a NOTIFY;
- poll-only: no NOTIFY, a 0.05 s poll (PgBouncer in transaction mode).

`measure` is one run at the application's defaults unless told otherwise (what the benchmark's
latency workload runs); the modes above pass their notify and poll settings. The commit time
of job n is taken just after its enqueue call returns (the call returns after
COMMIT); perform takes its own start time; both on this process's monotonic clock. The first
--warmup seconds of each run are left out of the figures.

    python bench/latency_bench.py           # the embedded PostgreSQL, database joobq_latency_bench
    python bench/latency_bench.py --url postgresql+psycopg://user@host/db --rate 500 --json out.json
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the bench package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import latency_figures, reset, workload_database
from bench.meter import Meter
from bench.meter import phase as metered
from joobq_sql import Job, JoobQ

BENCH_DATABASE = "joobq_latency_bench"
QUEUE = "latency"

_lock = threading.Lock()
_started: dict[int, float] = {}


class LatencyBenchJob(Job):
    """Records the moment its perform starts."""

    queue = QUEUE
    n: int

    def perform(self) -> None:
        now = time.perf_counter()
        with _lock:
            _started[self.n] = now


@dataclass(frozen=True)
class Mode:
    name: str
    notify: bool
    poll_interval: float


def measure(
    url: str,
    *,
    rate: float,
    seconds: float,
    warmup: float,
    workers: int | None = None,
    settings: dict[str, Any] | None = None,
    meter: Meter | None = None,
) -> dict[str, Any]:
    """One pickup-latency run: an application built as a user builds it (`JoobQ(database_url=
    url, **settings)`, `app.queue(QUEUE, jobs=[LatencyBenchJob])`, with `workers` when given),
    and a producer calling `LatencyBenchJob.enqueue` at `rate`. `meter`'s "latency" phase is the
    whole run, start-up and shut-down of the application included."""
    reset(url, vacuum=False)
    with _lock:
        _started.clear()
    with metered(meter, "latency"):
        app = JoobQ(database_url=url, **(settings or {}))
        if workers is None:
            definition = app.queue(QUEUE, jobs=[LatencyBenchJob])
        else:
            definition = app.queue(QUEUE, workers=workers, jobs=[LatencyBenchJob])
        poll_interval = app.settings.poll_interval
        notify = app.settings.notify
        worker = app.start()
        try:
            if worker.listener is not None and not worker.listener.wait_connected(10):
                raise RuntimeError("the worker's LISTEN did not start within 10 s")

            committed: dict[int, float] = {}
            total = math.ceil((warmup + seconds) * rate)
            skip = math.ceil(warmup * rate)
            began = time.perf_counter()
            for n in range(total):
                due = began + n / rate
                delay = due - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                LatencyBenchJob.enqueue(n=n)  # one transaction; returns after COMMIT
                committed[n] = time.perf_counter()
            produced = time.perf_counter() - began

            deadline = time.monotonic() + poll_interval + 30
            while time.monotonic() < deadline:
                with _lock:
                    if len(_started) >= total:
                        break
                time.sleep(0.05)
        finally:
            worker.stop(grace=5)
            app.close()

    with _lock:
        started = dict(_started)
    latencies = sorted(
        (started[n] - committed[n]) * 1000 for n in range(skip, total) if n in started
    )
    result = {
        "notify": notify,
        "poll_interval_s": poll_interval,
        "workers": definition.workers,
        "target_rate": rate,
        "achieved_rate": round(total / produced, 1),
        "jobs": total,
        "jobs_measured": len(latencies),
        "jobs_not_started": total - len(started),
    }
    return result | latency_figures(latencies)


def run(
    url: str, mode: Mode, *, rate: float, seconds: float, warmup: float, workers: int
) -> dict[str, Any]:
    """One run in `mode` (notify with a long poll, or poll-only) with `workers` workers."""
    settings = {"notify": mode.notify, "poll_interval": mode.poll_interval}
    result = measure(
        url, rate=rate, seconds=seconds, warmup=warmup, workers=workers, settings=settings
    )
    return {"mode": mode.name, **result}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="database URL (default: the embedded PostgreSQL)")
    parser.add_argument("--rate", type=float, default=200.0, help="enqueues per second")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds first")
    parser.add_argument("--workers", type=int, default=4, help="worker threads of the queue")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    url = workload_database(args.url, BENCH_DATABASE)
    modes = [Mode("notify", True, 5.0), Mode("poll-only", False, 0.05)]
    results = []
    for mode in modes:
        print(f"running {mode.name} ({args.warmup:g} s warm-up + {args.seconds:g} s)...")
        results.append(
            run(
                url,
                mode,
                rate=args.rate,
                seconds=args.seconds,
                warmup=args.warmup,
                workers=args.workers,
            )
        )

    print()
    header = f"{'mode':<10} {'poll':>6} {'rate/s':>8} {'jobs':>6} {'p50 ms':>8} {'p99 ms':>8} "
    print(header + f"{'max ms':>8} {'unstarted':>9}")
    for r in results:
        print(
            f"{r['mode']:<10} {r['poll_interval_s']:>6g} {r['achieved_rate']:>8.1f} "
            f"{r['jobs_measured']:>6} {r.get('p50_ms', math.nan):>8.2f} "
            f"{r.get('p99_ms', math.nan):>8.2f} {r.get('max_ms', math.nan):>8.2f} "
            f"{r['jobs_not_started']:>9}"
        )
    if args.json:
        args.json.write_text(json.dumps({"results": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
