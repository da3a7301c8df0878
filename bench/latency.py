"""pickup latency: an application at its defaults (the queue's workers, notify and the 1 s poll
all left as they come) while a producer calls `Job.enqueue` at a fixed rate, one transaction
per job; p50, p99 and max from the enqueue's COMMIT to the start of perform
(latency_bench.measure)."""

from __future__ import annotations

from typing import Any

from bench import latency_bench
from bench.meter import Meter


def run(
    url: str,
    *,
    rate: float,
    seconds: float,
    warmup: float,
    workers: int | None = None,
    meter: Meter | None = None,
) -> dict[str, Any]:
    return latency_bench.measure(
        url, rate=rate, seconds=seconds, warmup=warmup, workers=workers, meter=meter
    )
