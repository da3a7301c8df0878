"""Metrics only a worker process can see: how long performs take, and how long a due job
waited to be claimed. A middleware (app.use) measures them, so they fill in when the web app
runs in the process that runs the workers, and the middleware is installed before the workers
start (create_app installs it)."""

from __future__ import annotations

import bisect
import inspect
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ...app import JoobQ
from ...job import Job
from ...runtime.middleware import JobContext
from .exposition import Family

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


class Histogram:
    """A thread-safe Prometheus histogram with fixed buckets, per label set."""

    def __init__(self, label_names: tuple[str, ...], buckets: tuple[float, ...] = BUCKETS):
        self.label_names = label_names
        self.buckets = buckets
        self._lock = threading.Lock()
        self._series: dict[tuple[str, ...], list[float]] = {}  # bucket counts..., sum, count

    def observe(self, value: float, *labels: str) -> None:
        index = bisect.bisect_left(self.buckets, value)
        with self._lock:
            series = self._series.setdefault(labels, [0.0] * (len(self.buckets) + 2))
            if index < len(self.buckets):
                series[index] += 1
            series[-2] += value
            series[-1] += 1

    def family(self, name: str, help: str) -> Family:
        family = Family(name, "histogram", help)
        with self._lock:
            series = {labels: list(values) for labels, values in sorted(self._series.items())}
        for labels, values in series.items():
            base = dict(zip(self.label_names, labels, strict=True))
            cumulative = 0
            for bound, count in zip(self.buckets, values, strict=False):
                cumulative += int(count)
                family.add(cumulative, {**base, "le": repr(bound)}, "_bucket")
            family.add(int(values[-1]), {**base, "le": "+Inf"}, "_bucket")
            family.add(values[-2], base, "_sum")
            family.add(int(values[-1]), base, "_count")
        return family


class RunMetrics:
    """The middleware that times each perform, by queue, job type and outcome, and records the
    claim latency: seconds from a job's run_at (when it became due) to its claim, both read
    from the database's clock."""

    def __init__(self) -> None:
        self.perform_duration = Histogram(("queue", "job_type", "outcome"))
        self.claim_latency = Histogram(("queue",))

    def __call__(self, job: Job, context: JobContext, call_next: Callable[[], Any]) -> Any:
        record = context.record
        waited = (record.updated_at - record.run_at).total_seconds()
        self.claim_latency.observe(max(waited, 0.0), context.queue)
        started = time.perf_counter()
        try:
            result = call_next()
        except BaseException:
            self._performed(context, started, "failed")
            raise
        if inspect.isawaitable(result):  # an async queue: the perform runs when awaited
            return self._timed(result, context, started)
        self._performed(context, started, "completed")
        return result

    async def _timed(self, awaitable: Awaitable[Any], context: JobContext, started: float) -> Any:
        outcome = "failed"
        try:
            result = await awaitable
            outcome = "completed"
            return result
        finally:
            self._performed(context, started, outcome)

    def _performed(self, context: JobContext, started: float, outcome: str) -> None:
        elapsed = time.perf_counter() - started
        self.perform_duration.observe(elapsed, context.queue, context.record.job_type, outcome)

    def families(self) -> list[Family]:
        return [
            self.perform_duration.family(
                "joobq_perform_duration_seconds",
                "Seconds each perform took in this process, by queue, job type and outcome.",
            ),
            self.claim_latency.family(
                "joobq_claim_latency_seconds",
                "Seconds from a job becoming due (run_at) to its claim, for the jobs this "
                "process claimed (database clock).",
            ),
        ]

    @classmethod
    def installed_on(cls, app: JoobQ) -> RunMetrics:
        """The RunMetrics middleware of `app`, added to its middlewares if it has none. Workers
        started before this call do not see it."""
        for middleware in app.middlewares:
            if isinstance(middleware, cls):
                return middleware
        metrics = cls()
        app.use(metrics)
        return metrics
