"""The verdict: issue 15's acceptance targets, each as measured in this run (medians over the
rounds), with the ratio's range over the rounds (each round's ratio of the two systems, run
close together), and whether it is met. `met` is None when the run has no figure for it (a
workload not selected, a peer not installed, a failed variant).

A ratio is the ratio of the two medians; a round's ratio pairs the two runs of that round.
"""

from __future__ import annotations

from typing import Any

from bench.report import cost_median, median, per_round

KIB = 1024.0
DEFAULT_NAPTIME = "1min"


def _ratio(
    results: dict[str, Any],
    target: str,
    top: tuple[str, str, str],
    bottom: tuple[str, str, str],
    threshold: float,
    *,
    at_most: bool = False,
) -> dict[str, Any]:
    """`top` / `bottom` (each (workload, variant, metric)) against `threshold`: met when at
    least it (or, with `at_most`, at most it)."""
    a, b = median(results, *top), median(results, *bottom)
    value = a / b if a is not None and b else None
    rounds_a, rounds_b = per_round(results, *top), per_round(results, *bottom)
    ratios = [rounds_a[r] / rounds_b[r] for r in sorted(rounds_a) if rounds_b.get(r)]
    row: dict[str, Any] = {
        "target": target,
        "value": round(value, 3) if value is not None else None,
        "threshold": threshold,
        "met": None if value is None else (value <= threshold if at_most else value >= threshold),
        "of": {"top": [*top, a], "bottom": [*bottom, b]},
    }
    if value is None:
        row["measured"] = "not measured"
    else:
        row["measured"] = f"{value:.2f}x ({_fmt(a, top[2])} / {_fmt(b, bottom[2])})"
        if ratios:
            row["measured"] += f"; rounds {min(ratios):.2f}-{max(ratios):.2f}"
        row["rounds"] = [round(r, 3) for r in ratios]
    return row


def _bound(
    results: dict[str, Any], target: str, where: tuple[str, str, str], threshold: float
) -> dict[str, Any]:
    """A median that must be at most `threshold` (latencies in ms)."""
    value = median(results, *where)
    rounds = list(per_round(results, *where).values())
    row: dict[str, Any] = {
        "target": target,
        "value": value,
        "threshold": threshold,
        "met": None if value is None else value <= threshold,
    }
    row["measured"] = "not measured" if value is None else _fmt(value, where[2])
    if value is not None and rounds:
        row["measured"] += f"; rounds {_fmt(min(rounds), where[2])}-{_fmt(max(rounds), where[2])}"
    return row


def _fmt(value: float | None, metric: str) -> str:
    if value is None:
        return "-"
    if metric.endswith("_ms"):
        return f"{value:.2f} ms"
    return f"{value:,.0f}/s"


def verdict(results: dict[str, Any], *, processes: int) -> list[dict[str, Any]]:
    """Every target, in the issue's order."""
    two = processes
    rows = [
        _ratio(results, "default drain >= 2x pgqueuer at its defaults",
               ("drain", "joobq-sql/default", "jobs_per_s"),
               ("drain", "pgqueuer/default", "jobs_per_s"), 2.0),
        _ratio(results, "default drain >= 1x pgqueuer at batch 100",
               ("drain", "joobq-sql/default", "jobs_per_s"),
               ("drain", "pgqueuer/batch=100", "jobs_per_s"), 1.0),
        _ratio(results, "tuned drain, 1 process >= 0.4 of the claim-1000 ceiling (1 client)",
               ("drain", "joobq-sql/tuned", "jobs_per_s"),
               ("ceiling", "ceiling/claim-1000", "jobs_per_s"), 0.4),
        _ratio(results,
               f"tuned drain, {two} processes >= 0.6 of the {two}-client claim-1000 ceiling",
               ("drain", f"joobq-sql/tuned x{two}", "jobs_per_s"),
               ("ceiling", f"ceiling/claim-1000 x{two}", "jobs_per_s"), 0.6),
        _ratio(results, "public bulk (Job.batch_enqueue) >= 2x pgqueuer's bulk",
               ("bulk", "joobq-sql/Job.batch_enqueue", "jobs_per_s"),
               ("bulk", "pgqueuer/enqueue", "jobs_per_s"), 2.0),
        _ratio(results,
               "(item 3) Job.batch_enqueue >= 0.7 of store.enqueue_jobs, calls of 1,000",
               ("bulk", "joobq-sql/Job.batch_enqueue", "jobs_per_s"),
               ("bulk", "joobq-sql/store.enqueue_jobs 1000", "jobs_per_s"), 0.7),
        _ratio(results, "single Job.enqueue rate >= pgqueuer's",
               ("single", "joobq-sql/Job.enqueue", "jobs_per_s"),
               ("single", "pgqueuer/enqueue", "jobs_per_s"), 1.0),
        _ratio(results, "single Job.enqueue p50 <= pgqueuer's",
               ("single", "joobq-sql/Job.enqueue", "p50_ms"),
               ("single", "pgqueuer/enqueue", "p50_ms"), 1.0, at_most=True),
        _bound(results, "pickup p50 <= 2 ms at 200/s (a quiet machine)",
               ("latency", "joobq-sql/default", "p50_ms"), 2.0),
        _bound(results, "pickup p99 <= 5 ms at 200/s (a quiet machine)",
               ("latency", "joobq-sql/default", "p99_ms"), 5.0),
        _ratio(results, "pickup p50 no worse than pgqueuer's",
               ("latency", "joobq-sql/default", "p50_ms"),
               ("latency", "pgqueuer/default", "p50_ms"), 1.0, at_most=True),
        _ratio(results, "pickup p99 no worse than pgqueuer's",
               ("latency", "joobq-sql/default", "p99_ms"),
               ("latency", "pgqueuer/default", "p99_ms"), 1.0, at_most=True),
        _wal(results),
        *_ageing(results),
    ]  # fmt: skip
    return rows


def _wal(results: dict[str, Any]) -> dict[str, Any]:
    """WAL per completed no-op job: the default drain's enqueue (the fill) + its drain."""
    target = "WAL per completed no-op job <= 2 KiB (default drain: enqueue + claim + completion)"
    value = cost_median(results, "drain", "joobq-sql/default", "lifecycle", "wal_bytes_per_job")
    drained = cost_median(results, "drain", "joobq-sql/default", "drain", "wal_bytes_per_job")
    row: dict[str, Any] = {
        "target": target,
        "value": value,
        "threshold": 2 * KIB,
        "met": None if value is None else value <= 2 * KIB,
    }
    if value is None:
        row["measured"] = "not measured"
    else:
        row["measured"] = f"{value / KIB:.2f} KiB ({value:,.0f} B)"
        if drained is not None:
            row["measured"] += f"; claim + completion alone {drained / KIB:.2f} KiB"
    return row


def _ageing(results: dict[str, Any]) -> list[dict[str, Any]]:
    ageing = results.get("ageing")
    usable = isinstance(ageing, dict) and "error" not in ageing and "windows" in ageing
    naptime = ageing.get("autovacuum_naptime") if usable and ageing else None
    where = f"naptime {naptime}" if naptime else "naptime unknown"
    rows = []
    for target, key, threshold, at_most in (
        ("ageing at the default naptime: last window >= 90% of the first",
         "last_to_first_window", 0.9, False),
        ("ageing at the default naptime: table + indexes < 2x their starting size",
         "end_to_start_size", 2.0, True),
    ):  # fmt: skip
        value = ageing.get(key) if usable and ageing else None
        met = None
        if value is not None:
            met = value < threshold if at_most else value >= threshold
            if naptime not in (None, DEFAULT_NAPTIME):
                met = None  # measured, but not on a server at the default naptime
        rows.append(
            {
                "target": target,
                "value": value,
                "threshold": threshold,
                "met": met,
                "measured": "not measured" if value is None else f"{value:.2f}x ({where})",
            }
        )
    return rows


def rows(verdicts: list[dict[str, Any]]) -> list[list[str]]:
    """[target, measured, met] for printing."""
    words = {True: "yes", False: "NO", None: "n/a"}
    return [[v["target"], v["measured"], words[v["met"]]] for v in verdicts]
