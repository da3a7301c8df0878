"""ageing: one long drain (1,000,000 jobs by default) reporting its throughput in windows of
a tenth of the jobs (100k), and the size of the jobs table and its indexes when the drain
starts (the table filled) and when it ends.

What ages a queue table is dead tuples: every claim and completion leaves a dead row version
behind, and the claim index scans over them until (auto)vacuum removes them. The last
window's throughput as a fraction of the first says how much that costs.
"""

from __future__ import annotations

from typing import Any

from bench._common import table_sizes
from bench.drain import DrainOptions, drain


def run(url: str, jobs: int, options: DrainOptions, windows: int = 10) -> dict[str, Any]:
    window = max(jobs // windows, 1)
    sizes: dict[str, dict[str, int]] = {}

    def before_start() -> None:
        sizes["start"] = table_sizes(url)

    result = drain(url, jobs, options, window=window, before_start=before_start, poll=0.05)
    sizes["end"] = table_sizes(url)
    rates = [w["jobs_per_s"] for w in result["windows"]]
    start, end = sizes["start"], sizes["end"]
    return {
        **result,
        "window_jobs": window,
        "sizes": sizes,
        "last_to_first_window": round(rates[-1] / rates[0], 3) if rates and rates[0] else None,
        "end_to_start_size": round(end["total_bytes"] / start["total_bytes"], 3)
        if start["total_bytes"]
        else None,
    }
