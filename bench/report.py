"""The repeated workloads' figures over the rounds: each variant's min, median and max, its
costs per job, and the tables run.py prints.

A repeated workload's result is {"variants": {key: entry}, "order": [[key, ...] per round],
"skipped": {key: why}}; an entry holds the variant's "system", "label", its "runs" (one per
round, each with its "round"), and after `summarize` its "summary" (metric -> min/median/max)
and "costs" (phase -> per-job figure -> min/median/max).
"""

from __future__ import annotations

from typing import Any

from bench._common import summary
from bench.meter import PER_JOB

#: achieved_rate: the latency producer's rate (under load it may fall short of --rate)
METRICS = ("jobs_per_s", "p50_ms", "p99_ms", "max_ms", "achieved_rate")
UNITS = {"jobs_per_s": "jobs/s", "p50_ms": "ms", "p99_ms": "ms", "max_ms": "ms",
         "achieved_rate": "jobs/s"}  # fmt: skip
NAMES = {"jobs_per_s": "jobs/s", "p50_ms": "p50 ms", "p99_ms": "p99 ms", "max_ms": "max ms",
         "achieved_rate": "produced/s"}  # fmt: skip
#: the workloads whose rates are shown as a fraction of the ceiling
OF_CEILING = ("ceiling", "drain")


def summarize(entry: dict[str, Any]) -> None:
    """Set `entry`'s summary and costs from its runs (failed runs left out)."""
    runs = [r for r in entry["runs"] if "error" not in r]
    entry["summary"] = {
        metric: summary([r[metric] for r in runs if r.get(metric) is not None])
        for metric in METRICS
        if any(r.get(metric) is not None for r in runs)
    }
    phases: dict[str, dict[str, list[float]]] = {}
    for r in runs:
        for phase, figures in (r.get("costs") or {}).items():
            for key in PER_JOB:
                if key in figures:
                    phases.setdefault(phase, {}).setdefault(key, []).append(figures[key])
    entry["costs"] = {
        phase: {key: summary(values) for key, values in figures.items()}
        for phase, figures in phases.items()
    }


def entry(results: dict[str, Any], workload: str, key: str) -> dict[str, Any] | None:
    found = results.get(workload, {}).get("variants", {}).get(key)
    return found if isinstance(found, dict) else None


def median(results: dict[str, Any], workload: str, key: str, metric: str = "jobs_per_s") -> Any:
    found = entry(results, workload, key)
    if found is None:
        return None
    return found.get("summary", {}).get(metric, {}).get("median")


def per_round(
    results: dict[str, Any], workload: str, key: str, metric: str = "jobs_per_s"
) -> dict[int, float]:
    """round -> the variant's `metric` in that round (rounds it failed in are missing)."""
    found = entry(results, workload, key)
    if found is None:
        return {}
    return {
        r["round"]: r[metric]
        for r in found.get("runs", [])
        if "error" not in r and r.get(metric) is not None
    }


def cost_median(
    results: dict[str, Any], workload: str, key: str, phase: str, metric: str
) -> float | None:
    found = entry(results, workload, key)
    if found is None:
        return None
    value = found.get("costs", {}).get(phase, {}).get(metric, {}).get("median")
    return float(value) if value is not None else None


# -- tables ------------------------------------------------------------------------------------


def _num(value: Any, unit: str) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    if unit == "jobs/s":
        return f"{value:,.0f}"
    if unit == "ms":
        return f"{value:.2f}"
    return f"{value:,.2f}"


def result_rows(results: dict[str, Any], ceiling_rate: float | None) -> list[list[str]]:
    """[workload, variant, metric, median, min, max, of ceiling] for every repeated variant."""
    rows: list[list[str]] = []
    for workload, result in results.items():
        if "variants" not in result:
            continue
        for key, found in result["variants"].items():
            label = f"{key}: {found.get('label', '')}".rstrip(": ")
            if "skipped" in found:
                rows.append([workload, label, "skipped", found["skipped"][:60], "", "", ""])
                continue
            errors = [r["error"] for r in found.get("runs", []) if "error" in r]
            for metric, figures in found.get("summary", {}).items():
                unit = UNITS[metric]
                fraction = ""
                if (
                    metric == "jobs_per_s"
                    and workload in OF_CEILING
                    and ceiling_rate
                    and figures["median"]
                ):
                    fraction = f"{figures['median'] / ceiling_rate:.2f}"
                rows.append([
                    workload, label, NAMES[metric], _num(figures["median"], unit),
                    _num(figures["min"], unit), _num(figures["max"], unit), fraction,
                ])  # fmt: skip
                label = ""  # the variant's name on its first row only
            if errors:
                rows.append([workload, label or "", "failed rounds", str(len(errors)),
                             errors[0].splitlines()[0][:60], "", ""])  # fmt: skip
    return rows


def cost_rows(results: dict[str, Any]) -> list[list[str]]:
    """[workload, variant, phase, WAL bytes, WAL records, FPIs, commits] per job (medians)."""
    rows: list[list[str]] = []
    for workload, result in results.items():
        if "variants" not in result:
            if "costs" in result:  # a workload run once, metered as a whole
                for phase, figures in result["costs"].items():
                    rows.append([workload, "(once)", phase, *_cost_cells(figures, single=True)])
            continue
        for key, found in result["variants"].items():
            for phase, figures in found.get("costs", {}).items():
                rows.append([workload, key, phase, *_cost_cells(figures)])
    return rows


def _cost_cells(figures: dict[str, Any], *, single: bool = False) -> list[str]:
    def value(key: str) -> Any:
        got = figures.get(key)
        return got if single or got is None else got.get("median")

    cells = []
    for key, form in zip(PER_JOB, ("{:,.0f}", "{:.2f}", "{:.3f}", "{:.3f}"), strict=True):
        got = value(key)
        cells.append("-" if got is None else form.format(got))
    return cells


def format_table(header: list[str], rows: list[list[str]], right: set[int]) -> str:
    """A plain-text table; the columns in `right` right-aligned."""
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    lines = []
    for index, row in enumerate([header, *rows]):
        cells = [
            str(cell).rjust(widths[i]) if i in right else str(cell).ljust(widths[i])
            for i, cell in enumerate(row)
        ]
        lines.append("  ".join(cells).rstrip())
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


RESULT_HEADER = ["workload", "variant", "metric", "median", "min", "max", "of ceiling"]
COST_HEADER = ["workload", "variant", "phase", "WAL B/job", "records/job", "FPI/job",
               "commits/job"]  # fmt: skip


# -- the steady-depth ageing, self_vacuum on and off -------------------------------------------

#: run_steady_both's arms, in the order its rows show them
STEADY_ARMS = ("on", "off")


def steady_rows(result: dict[str, Any]) -> list[list[str]]:
    """[workload, metric, value] of bench/ageing.py's run_steady_both: per arm (the workers'
    self_vacuum on, off) its throughput, windows, the table's size and the VACUUMs that ran;
    then the ratios of on to off."""
    mb = 1e6
    rows = [["steady", "depth kept / jobs completed per arm",
             f"{result.get('depth', 0):,} / {result.get('jobs', 0):,}"]]  # fmt: skip
    for name in STEADY_ARMS:
        arm = result.get(name)
        if not isinstance(arm, dict):
            continue
        which = f"self_vacuum {name}"
        if "error" in arm:
            rows.append(["steady", f"{which}: error", arm["error"].splitlines()[0][:80]])
            continue
        start = arm["sizes"]["start"]["total_bytes"]
        rows += [
            ["steady", f"{which}: jobs/s", f"{arm['jobs_per_s']:,.0f}"],
            ["steady", f"{which}: last / first window", f"{arm['last_to_first_window']:.2f}x"],
            ["steady", f"{which}: table+indexes at start (MB)", f"{start / mb:,.1f}"],
            ["steady", f"{which}: table+indexes largest (MB)",
             f"{arm['largest_bytes'] / mb:,.1f}"],
            ["steady", f"{which}: table+indexes at end (MB)",
             f"{arm['sizes']['end']['total_bytes'] / mb:,.1f}"],
            ["steady", f"{which}: largest dead share", f"{arm['largest_dead_share']:.2f}"],
            ["steady", f"{which}: vacuums / autovacuums",
             f"{arm['vacuums']} / {arm['autovacuums']} (naptime {arm['autovacuum_naptime']})"],
        ]  # fmt: skip
    for key, what in (("on_to_off_throughput", "throughput"),
                      ("on_to_off_largest_size", "largest size")):  # fmt: skip
        ratio = result.get(key)
        rows.append(["steady", f"on / off {what}", "-" if ratio is None else f"{ratio:.2f}x"])
    return rows
