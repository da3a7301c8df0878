"""joobq-sql's benchmark: every workload in one run, a table, and JSON.

    python bench/run.py                         # the embedded PostgreSQL, full sizes
    python bench/run.py --quick                 # small sizes (a smoke run)
    python bench/run.py --url postgresql://user@host/db --json out.json --only drain,ceiling
    python -m bench ...                         # the same, from the repository's root
    joobq-sql bench ...                         # the same, from a source checkout

Without --url each workload gets a database of its own on the embedded PostgreSQL, created and
migrated here, at the server's default durability (fsync and synchronous_commit on). With --url
every workload runs in that database, which is migrated and emptied first: its jobs are lost.

Workloads (each a module of this package): ceiling, drain, bulk, single, latency, ageing, xmin,
peers. Throughputs are also printed as a fraction of the ceiling measured in the same run.
Nothing here asserts a speed; quote ratios measured in one run.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the bench package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import ageing, bulk, ceiling, drain, latency, peers, single, xmin_pin
from bench._common import drop_embedded_database, mask, server_info, workload_database
from bench.drain import DrainOptions, describe_settings, supports_prefetch

WORKLOADS = (
    "ceiling", "drain", "scale", "bulk", "single", "latency", "ageing", "xmin", "peers",
)  # fmt: skip
DATABASE_PREFIX = "joobq_bench_"


@dataclass(frozen=True)
class Sizes:
    jobs: int
    ageing_jobs: int
    single_jobs: int
    latency_seconds: float
    latency_warmup: float


FULL = Sizes(
    jobs=50_000,
    ageing_jobs=1_000_000,
    single_jobs=2000,
    latency_seconds=10.0,
    latency_warmup=1.0,
)
QUICK = Sizes(
    jobs=10_000,
    ageing_jobs=100_000,
    single_jobs=500,
    latency_seconds=3.0,
    latency_warmup=0.5,
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/run.py",
        description="Run joobq-sql's benchmark workloads; print a table and write JSON.",
    )
    parser.add_argument("--url", help="database URL (default: the embedded PostgreSQL)")
    parser.add_argument("--json", type=Path, help="write the results to this file")
    parser.add_argument(
        "--only", help=f"comma-separated workloads to run (default: all of {','.join(WORKLOADS)})"
    )
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument("--processes", type=int, default=1, help="drain worker processes (1)")
    parser.add_argument("--threads", type=int, default=16, help="workers per process (16)")
    parser.add_argument(
        "--scale-processes",
        type=int,
        default=max(os.cpu_count() or 1, 2),
        help="scale: drain worker processes and ceiling connections (one per CPU, at least 2)",
    )
    parser.add_argument("--batch", type=int, default=1000, help="worker_batch_size (1000)")
    parser.add_argument(
        "--prefetch",
        help="comma-separated prefetch values to drain with (default: the setting's default "
        "and the batch size, when this version has the setting)",
    )
    parser.add_argument("--jobs", type=int, help="jobs per drain, bulk and ceiling (50,000)")
    parser.add_argument("--ageing-jobs", type=int, help="jobs of the ageing drain (1,000,000)")
    parser.add_argument("--ageing-windows", type=int, default=10, help="ageing windows (10)")
    parser.add_argument("--single-jobs", type=int, help="single enqueues timed (2000)")
    parser.add_argument("--rate", type=float, default=200.0, help="latency: jobs/s (200)")
    parser.add_argument("--latency-seconds", type=float, help="latency: measured seconds (10)")
    parser.add_argument("--latency-warmup", type=float, help="latency: unmeasured seconds (1)")
    parser.add_argument("--latency-workers", type=int, default=4, help="latency: workers (4)")
    parser.add_argument("--xmin-cap", type=float, default=60.0, help="xmin: pin at most (60 s)")
    parser.add_argument("--timeout", type=float, default=900.0, help="per drain, seconds (900)")
    args = parser.parse_args(argv)
    selected = WORKLOADS if not args.only else tuple(w.strip() for w in args.only.split(","))
    unknown = [w for w in selected if w not in WORKLOADS]
    if unknown:
        parser.error(f"unknown workloads {unknown}; choose from {','.join(WORKLOADS)}")
    args.selected = [w for w in WORKLOADS if w in selected]
    base = QUICK if args.quick else FULL
    args.jobs = args.jobs or base.jobs
    args.ageing_jobs = args.ageing_jobs or base.ageing_jobs
    args.single_jobs = args.single_jobs or base.single_jobs
    args.latency_seconds = args.latency_seconds or base.latency_seconds
    if args.latency_warmup is None:
        args.latency_warmup = base.latency_warmup
    if args.prefetch:
        args.prefetches = [int(p) for p in args.prefetch.split(",")]
    elif supports_prefetch():
        from joobq_sql.settings import Settings

        default = Settings().prefetch  # type: ignore[attr-defined]
        args.prefetches = list(dict.fromkeys([default, args.batch]))
    else:
        args.prefetches = [None]
    return args


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.options = DrainOptions(
            processes=args.processes,
            threads=args.threads,
            batch=args.batch,
            # until the drain workload finds the fastest: the largest value tried
            prefetch=max(args.prefetches, key=lambda p: -1 if p is None else p),
            timeout=args.timeout,
        )
        self.results: dict[str, Any] = {}
        self.failed: list[str] = []
        self._made: list[str] = []

    def database(self, workload: str, *, migrate: bool = True) -> str:
        name = DATABASE_PREFIX + workload
        if not self.args.url:
            self._made.append(name)
        return workload_database(self.args.url, name, migrate=migrate)

    def _drop_databases(self) -> None:
        """Drop the embedded databases the last workload made: the rows it left would keep
        autovacuum busy during the next workload's measurement."""
        while self._made:
            drop_embedded_database(self._made.pop())

    def run_all(self) -> None:
        for workload in self.args.selected:
            print(f"running {workload}...", flush=True)
            started = time.perf_counter()
            try:
                self.results[workload] = getattr(self, f"run_{workload}")()
            except Exception as exc:
                self.failed.append(workload)
                self.results[workload] = {
                    "error": f"{type(exc).__name__}: {exc}",
                    "traceback": traceback.format_exc(),
                }
                print(f"  {workload} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            self.results[workload]["wall_s"] = round(time.perf_counter() - started, 1)
            self._drop_databases()

    # -- the workloads ---------------------------------------------------------------------

    def run_ceiling(self) -> dict[str, Any]:
        a = self.args
        return ceiling.run(self.database("ceiling"), a.jobs, a.batch, a.processes)

    def run_drain(self) -> dict[str, Any]:
        result = drain.run(
            self.database("drain"), self.args.jobs, self.options, self.args.prefetches
        )
        # later drains (ageing, xmin) use the prefetch that drained fastest here
        self.options = dataclasses.replace(self.options, prefetch=result["best"]["prefetch"])
        return result

    def run_scale(self) -> dict[str, Any]:
        """The drain and the SQL ceiling again, with one worker process (and one ceiling
        connection) per CPU: how far one host goes when a single process's GIL is not the
        limit. Drains with the prefetch the drain workload found fastest."""
        a = self.args
        processes = a.scale_processes
        ceiling_result = ceiling.run(self.database("scale_ceiling"), a.jobs, a.batch, processes)
        options = dataclasses.replace(self.options, processes=processes)
        drained = drain.run(self.database("scale"), a.jobs, options, [options.prefetch])
        single_process = self.results.get("drain", {}).get("jobs_per_s")
        return {
            "processes": processes,
            "ceiling": ceiling_result["sql"],
            "drain": drained["best"],
            "jobs_per_s": drained["jobs_per_s"],
            "of_own_ceiling": drained["jobs_per_s"] / ceiling_result["sql"]["jobs_per_s"],
            "to_one_process": drained["jobs_per_s"] / single_process if single_process else None,
        }

    def run_bulk(self) -> dict[str, Any]:
        return bulk.run(self.database("bulk"), self.args.jobs)

    def run_single(self) -> dict[str, Any]:
        return single.run(self.database("single"), self.args.single_jobs)

    def run_latency(self) -> dict[str, Any]:
        a = self.args
        return latency.run(
            self.database("latency"),
            rate=a.rate,
            seconds=a.latency_seconds,
            warmup=a.latency_warmup,
            workers=a.latency_workers,
        )

    def run_ageing(self) -> dict[str, Any]:
        a = self.args
        return ageing.run(self.database("ageing"), a.ageing_jobs, self.options, a.ageing_windows)

    def run_xmin(self) -> dict[str, Any]:
        a = self.args
        return xmin_pin.run(self.database("xmin"), a.jobs, self.options, cap=a.xmin_cap)

    def run_peers(self) -> dict[str, Any]:
        a = self.args
        from joobq_sql.settings import Settings

        return peers.run(
            lambda name: self.database(name, migrate=False),
            jobs=a.jobs,
            processes=a.processes,
            threads=a.threads,
            batch=a.batch,
            latency_batch=Settings().worker_batch_size,  # what our latency run claims with
            latency_workers=a.latency_workers,
            rate=a.rate,
            seconds=a.latency_seconds,
            warmup=a.latency_warmup,
            timeout=a.timeout,
        )


# -- the table ---------------------------------------------------------------------------------


def _num(value: Any, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    if unit == "jobs/s":
        return f"{value:,.0f}"
    if unit == "ms":
        return f"{value:.2f}"
    if unit == "MB":
        return f"{value / 1e6:,.1f}"
    if unit == "x":
        return f"{value:.2f}x"
    return f"{value}"


def table_rows(results: dict[str, Any], ceiling_rate: float | None) -> list[list[str]]:
    """[workload, metric, value, fraction of ceiling] rows."""
    rows: list[list[str]] = []

    def add(workload: str, metric: str, value: Any, unit: str = "") -> None:
        fraction = ""
        if unit == "jobs/s" and ceiling_rate and isinstance(value, int | float):
            fraction = f"{value / ceiling_rate:.2f}"
        label = f"{metric} ({unit})" if unit and unit != "x" else metric
        rows.append([workload, label, _num(value, unit), fraction])

    for workload, r in results.items():
        if "error" in r:
            add(workload, "error", r["error"].splitlines()[0][:80])
            continue
        if workload == "ceiling":
            add(
                workload,
                f"SQL loop, prepared, {r['connections']} conn",
                r["sql"]["jobs_per_s"],
                "jobs/s",
            )
            add(workload, "store.claim_jobs+complete_jobs loop", r["store"]["jobs_per_s"], "jobs/s")
        elif workload == "drain":
            for run in r["runs"]:
                add(workload, _shape(run), run["jobs_per_s"], "jobs/s")
        elif workload == "scale":
            connections = f"{r['processes']} conn"
            sql = r["ceiling"]["jobs_per_s"]
            add(workload, f"SQL loop, prepared, {connections}", sql, "jobs/s")
            add(workload, _shape(r["drain"]), r["jobs_per_s"], "jobs/s")
            add(workload, f"drain / SQL loop of {connections}", r["of_own_ceiling"], "x")
            if r["to_one_process"] is not None:
                add(workload, "drain / 1-process drain", r["to_one_process"], "x")
        elif workload == "bulk":
            for run in r["runs"]:
                calls = "1 call" if run["calls"] == 1 else f"calls of {run['batch_size']:,}"
                add(workload, f"enqueue_jobs, {calls} ({run['path']})", run["jobs_per_s"], "jobs/s")
        elif workload == "single":
            add(workload, "Job.enqueue p50", r["p50_ms"], "ms")
            add(workload, "Job.enqueue p99", r["p99_ms"], "ms")
            add(workload, "one thread", r["jobs_per_s"], "jobs/s")
        elif workload == "latency":
            for key in ("p50_ms", "p99_ms", "max_ms"):
                add(workload, f"pickup {key[:-3]} at {r['target_rate']:g}/s", r.get(key), "ms")
        elif workload == "ageing":
            add(workload, f"drain: {_shape(r)}", "")
            windows = r["windows"]
            add(workload, "first window", windows[0]["jobs_per_s"], "jobs/s")
            add(workload, "last window", windows[-1]["jobs_per_s"], "jobs/s")
            add(workload, "last / first window", r["last_to_first_window"], "x")
            add(workload, "table+indexes at start", r["sizes"]["start"]["total_bytes"], "MB")
            add(workload, "table+indexes at end", r["sizes"]["end"]["total_bytes"], "MB")
            add(workload, "end / start size", r["end_to_start_size"], "x")
        elif workload == "xmin":
            add(workload, f"drains: {_shape(r['unpinned'])}", "")
            add(workload, "unpinned drain", r["unpinned"]["jobs_per_s"], "jobs/s")
            if r["pinned"]:
                add(workload, "pinned drain", r["pinned"]["jobs_per_s"], "jobs/s")
            add(workload, "pinned / unpinned", r["pinned_to_unpinned"], "x")
            add(workload, "errors", "; ".join(r["errors"]) or "none")
        elif workload == "peers":
            _peer_rows(results, r, add)
    return rows


def _shape(run: dict[str, Any]) -> str:
    """ "PxT, batch B, prefetch F, N jobs" of a drain result."""
    shape = f"{run['processes']}x{run['threads']}, batch {run['batch']}"
    if run.get("prefetch") is not None:
        shape += f", prefetch {run['prefetch']}"
    return f"{shape}, {run['jobs']:,} jobs"


def _peer_rows(results: dict[str, Any], r: dict[str, Any], add: Callable[..., None]) -> None:
    ours_drain = results.get("drain", {}).get("jobs_per_s")
    ours_latency = results.get("latency", {})
    for name, peer in r.items():
        if not isinstance(peer, dict):
            continue
        if "skipped" in peer:
            add(f"peers/{name}", "skipped", peer["skipped"][:80])
        if "drain" in peer:
            add(f"peers/{name}", "drain", peer["drain"]["jobs_per_s"], "jobs/s")
            if ours_drain:
                add(
                    f"peers/{name}",
                    "drain: ours / theirs",
                    ours_drain / peer["drain"]["jobs_per_s"],
                    "x",
                )
        if "latency" in peer:
            lat = peer["latency"]
            for key in ("p50_ms", "p99_ms", "max_ms"):
                add(f"peers/{name}", f"pickup {key[:-3]}", lat.get(key), "ms")
            for key in ("p50_ms", "p99_ms"):
                if ours_latency.get(key) and lat.get(key):
                    add(
                        f"peers/{name}",
                        f"pickup {key[:-3]}: theirs / ours",
                        lat[key] / ours_latency[key],
                        "x",
                    )


def format_table(rows: list[list[str]]) -> str:
    header = ["workload", "metric", "value", "of ceiling"]
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(4)]
    lines = []
    for index, row in enumerate([header, *rows]):
        cells = [
            row[0].ljust(widths[0]),
            row[1].ljust(widths[1]),
            row[2].rjust(widths[2]),
            row[3].rjust(widths[3]),
        ]
        lines.append("  ".join(cells).rstrip())
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


# -- main --------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    bench = Bench(args)
    if args.url:
        probe = args.url
    else:
        from joobq_sql.embedded import server_url

        probe = server_url("postgres")
    settings = describe_settings(probe, bench.options)
    meta = {
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "quick": args.quick,
        "database": mask(args.url) if args.url else "embedded PostgreSQL, a database per workload",
        "server": server_info(probe),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "drain": {
            "jobs": args.jobs,
            "processes": args.processes,
            "threads": args.threads,
            "batch": args.batch,
            "prefetch_values": args.prefetches,
            "settings": settings,
        },
        "sizes": {
            "jobs": args.jobs,
            "ageing_jobs": args.ageing_jobs,
            "ageing_windows": args.ageing_windows,
            "single_jobs": args.single_jobs,
            "latency_rate": args.rate,
            "latency_seconds": args.latency_seconds,
            "latency_warmup": args.latency_warmup,
            "latency_workers": args.latency_workers,
            "xmin_cap_s": args.xmin_cap,
        },
        "workloads": args.selected,
    }
    server = meta["server"]
    print(
        f"PostgreSQL {server['version']} (fsync={server['fsync']}, synchronous_commit="
        f"{server['synchronous_commit']}), {meta['machine']['cpus']} CPUs, Python "
        f"{meta['machine']['python']}; {meta['database']}"
    )
    shown = ("worker_batch_size", "prefetch", "poll_interval", "notify", "pool_size", "lease")
    print(
        f"drain: {args.jobs:,} jobs, {args.processes} process(es) x {args.threads} workers; "
        f"prefetch tried: {args.prefetches}; settings: "
        + ", ".join(f"{k}={settings.get(k)}" for k in shown)
    )
    bench.run_all()

    ceiling_rate = bench.results.get("ceiling", {}).get("jobs_per_s")
    rows = table_rows(bench.results, ceiling_rate)
    print()
    print(format_table(rows))
    if "ageing" in bench.results and "windows" in bench.results["ageing"]:
        rates = ", ".join(f"{w['jobs_per_s']:,.0f}" for w in bench.results["ageing"]["windows"])
        print(
            f"\nageing windows of {bench.results['ageing']['window_jobs']:,} jobs (jobs/s): {rates}"
        )
    if "bulk" in bench.results and "copy" in bench.results["bulk"]:
        print(f"bulk: {bench.results['bulk']['copy']}")
    output = {
        "meta": meta,
        "ceiling_jobs_per_s": ceiling_rate,
        "workloads": bench.results,
        "table": [
            dict(zip(("workload", "metric", "value", "of_ceiling"), r, strict=True)) for r in rows
        ],
        "failed": bench.failed,
    }
    if args.json:
        args.json.write_text(json.dumps(output, indent=2, default=str) + "\n")
        print(f"\nwrote {args.json}")
    if bench.failed:
        print(f"failed workloads: {', '.join(bench.failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
