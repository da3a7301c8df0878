"""pickup latency: latency_bench's notify mode (a producer at a fixed rate, one transaction per
job, workers idle-waiting on LISTEN/NOTIFY with a 5 s poll); p50, p99 and max from the
enqueue's COMMIT to the start of perform."""

from __future__ import annotations

from typing import Any

from bench import latency_bench


def run(url: str, *, rate: float, seconds: float, warmup: float, workers: int) -> dict[str, Any]:
    mode = latency_bench.Mode("notify", True, 5.0)
    return latency_bench.run(url, mode, rate=rate, seconds=seconds, warmup=warmup, workers=workers)
