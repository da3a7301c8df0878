"""ageing: one long drain (1,000,000 jobs by default) reporting its throughput in windows of
a tenth of the jobs (100k), and the size of the jobs table and its indexes when the drain
starts (the table filled) and when it ends.

What ages a queue table is dead tuples: every claim and completion leaves a dead row version
behind, and the claim index scans over them until (auto)vacuum removes them. The last
window's throughput as a fraction of the first says how much that costs.

Run it on a server at the stock `autovacuum_naptime` (60 s: what a managed server runs, and
what `bench/run.py`'s private server runs), where autovacuum visits the table once a minute:
there the workers' own VACUUM (the `self_vacuum` setting, on by default) is what keeps the
table small. `self_vacuum=False` runs the same drain without it, for comparison; the result
says how often each kind of VACUUM ran and what the server's naptime was.

    python -m bench.ageing --url postgresql://... [--jobs N] [--no-self-vacuum] [--depth 4000]

`run_steady` (`--depth`) is the other way a table ages: a steady depth of waiting jobs, as a
service runs it, where the table starts small and any dead versions kept show in its size.
`run_steady_both` (`--depth N --compare`, and `python -m bench`'s steady workload) runs it with
the workers' self_vacuum off, then on, in one run, and compares the two.
"""

from __future__ import annotations

import argparse
import json
import os
import traceback
from dataclasses import dataclass
from typing import Any

import psycopg

from bench._common import (
    SCHEMA,
    ChildChannel,
    analyze,
    completed_total,
    libpq,
    new_jobs,
    per_second,
    reset,
    run_processes,
    table_sizes,
    window_rates,
)
from bench.drain import DrainOptions, drain, worker_process
from joobq_sql import PostgresStore
from joobq_sql.settings import Settings


def vacuum_figures(url: str) -> dict[str, Any]:
    """The server's autovacuum naptime, and how often the jobs table was vacuumed by hand (the
    runtime's own VACUUM) and by autovacuum."""
    with psycopg.connect(libpq(url), autocommit=True) as conn:
        row = conn.execute(
            "SELECT current_setting('autovacuum_naptime'), coalesce(s.vacuum_count, 0), "
            "coalesce(s.autovacuum_count, 0) FROM (SELECT 1) AS one "
            "LEFT JOIN pg_stat_user_tables AS s ON s.relid = %s::regclass",
            (f"{SCHEMA}.jobs",),
        ).fetchone()
    assert row is not None
    return {"autovacuum_naptime": row[0], "vacuums": int(row[1]), "autovacuums": int(row[2])}


def run(
    url: str, jobs: int, options: DrainOptions, windows: int = 10, *, self_vacuum: bool = True
) -> dict[str, Any]:
    window = max(jobs // windows, 1)
    sizes: dict[str, dict[str, int]] = {}
    counts: dict[str, dict[str, Any]] = {}

    def before_start() -> None:
        sizes["start"] = table_sizes(url)
        counts["start"] = vacuum_figures(url)

    result = drain(
        url,
        jobs,
        options,
        window=window,
        before_start=before_start,
        poll=0.05,
        worker=_steady_worker,  # each worker process sets its own self_vacuum
        worker_args=(url, options, self_vacuum),
    )
    sizes["end"] = table_sizes(url)
    counts["end"] = vacuum_figures(url)
    rates = [w["jobs_per_s"] for w in result["windows"]]
    start, end = sizes["start"], sizes["end"]
    return {
        **result,
        "self_vacuum": self_vacuum,
        "workers_self_vacuum": [ready.get("self_vacuum") for ready in result["workers_ready"]],
        "autovacuum_naptime": counts["end"]["autovacuum_naptime"],
        # during the drain (the fill's own VACUUM ANALYZE comes before the start)
        "vacuums": counts["end"]["vacuums"] - counts["start"]["vacuums"],
        "autovacuums": counts["end"]["autovacuums"] - counts["start"]["autovacuums"],
        "window_jobs": window,
        "sizes": sizes,
        "last_to_first_window": round(rates[-1] / rates[0], 3) if rates and rates[0] else None,
        "end_to_start_size": round(end["total_bytes"] / start["total_bytes"], 3)
        if start["total_bytes"]
        else None,
    }


@dataclass
class _ReadyWithSetting(ChildChannel):
    """A worker's channel whose "ready" report also says the self_vacuum it runs with."""

    self_vacuum: bool = True

    def report(self, kind: str, info: Any = None) -> None:
        if kind == "ready" and isinstance(info, dict):
            info = {**info, "self_vacuum": self.self_vacuum}
        super().report(kind, info)


def _steady_worker(
    url: str, options: DrainOptions, self_vacuum: bool, *, channel: ChildChannel
) -> None:
    """bench/drain.py's worker process with the workers' self_vacuum set in the process itself:
    set in the parent, it would not reach a worker whose fork server started before it."""
    os.environ["JOOBQ_SELF_VACUUM"] = "true" if self_vacuum else "false"
    running = Settings.build()[0].self_vacuum  # as the application reads it
    reporting = _ReadyWithSetting(channel.messages, channel.go, channel.stop, running)
    worker_process(url, options, channel=reporting)


def run_steady(
    url: str,
    jobs: int,
    options: DrainOptions,
    windows: int = 10,
    *,
    depth: int = 4000,
    sample_every: float = 5.0,
    self_vacuum: bool = True,
) -> dict[str, Any]:
    """The other way a queue table ages: a steady depth, as a service runs it. The queue is
    kept at about `depth` waiting jobs (topped up between progress polls) while the workers
    complete `jobs` in all; throughput per window, and the table's size and dead tuples every
    `sample_every` seconds. The table starts small (`depth` rows), so dead versions kept until
    the next VACUUM show in its size at once."""
    window = max(jobs // windows, 1)
    reset(url)
    store = PostgresStore(url, pool_size=1)
    enqueued = 0

    def top_up(done: int) -> None:
        nonlocal enqueued
        wanted = min(depth - (enqueued - done), jobs - enqueued)
        if wanted > 0:
            store.enqueue_jobs(list(new_jobs(wanted)))
            enqueued += wanted

    samples: list[dict[str, Any]] = []
    last = {"done": 0, "sampled": -sample_every}
    try:
        top_up(0)
        analyze(url)
        start, counts_start = table_sizes(url), vacuum_figures(url)
        with psycopg.connect(libpq(url), autocommit=True) as conn:

            def progress() -> int:
                last["done"] = completed_total(conn)
                return last["done"]

            def on_poll(elapsed: float) -> None:
                top_up(last["done"])
                if elapsed - last["sampled"] >= sample_every:
                    last["sampled"] = elapsed
                    samples.append(
                        {"s": round(elapsed, 1), "done": last["done"], **table_sizes(url)}
                    )

            run = run_processes(
                _steady_worker,
                (url, options, self_vacuum),
                options.processes,
                progress=progress,
                goal=jobs,
                timeout=options.timeout,
                poll=0.02,
                on_poll=on_poll,
            )
    finally:
        store.close()
    end, counts_end = table_sizes(url), vacuum_figures(url)
    rates = window_rates(run.samples, jobs, window)
    first, final = rates[0]["jobs_per_s"], rates[-1]["jobs_per_s"]
    largest = max(s["total_bytes"] for s in [start, *samples, end])
    return {
        "jobs": jobs,
        "depth": depth,
        "threads": options.threads,
        "batch": options.batch,
        "prefetch": options.prefetch,
        "self_vacuum": self_vacuum,
        # what each worker process ran with (from its "ready" report)
        "workers_self_vacuum": [ready.get("self_vacuum") for ready in run.ready],
        "autovacuum_naptime": counts_end["autovacuum_naptime"],
        "vacuums": counts_end["vacuums"] - counts_start["vacuums"],
        "autovacuums": counts_end["autovacuums"] - counts_start["autovacuums"],
        "seconds": round(run.seconds, 3),
        "jobs_per_s": per_second(jobs, run.seconds),
        "windows": rates,
        "window_jobs": window,
        "sizes": {"start": start, "end": end},
        "samples": samples,
        "last_to_first_window": round(final / first, 3) if first else None,
        "largest_bytes": largest,
        "largest_to_start_size": round(largest / start["total_bytes"], 3),
        "largest_dead_share": max(
            (s["dead_tuples"] / max(s["live_tuples"] + s["dead_tuples"], 1) for s in samples),
            default=0.0,
        ),
    }


#: The arms of run_steady_both, in the order they run. One run of each, in a fixed order: read
#: their ratio with the run's load in mind (the second arm starts on a warmer server).
STEADY_ARMS = (("off", False), ("on", True))


def run_steady_both(
    url: str,
    jobs: int,
    options: DrainOptions,
    windows: int = 10,
    *,
    depth: int = 4000,
    sample_every: float = 5.0,
) -> dict[str, Any]:
    """run_steady with the workers' self_vacuum off, then on (each from an emptied table), and
    the comparison of the two (steady_comparison). An arm that fails is reported as its
    error; the other still runs."""
    arms: dict[str, Any] = {}
    for name, enabled in STEADY_ARMS:
        try:
            arms[name] = run_steady(
                url, jobs, options, windows, depth=depth, sample_every=sample_every,
                self_vacuum=enabled,
            )  # fmt: skip
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            arms[name] = {"error": error, "traceback": traceback.format_exc()}
    return {"jobs": jobs, "depth": depth, **steady_comparison(arms)}


def steady_comparison(arms: dict[str, Any]) -> dict[str, Any]:
    """`arms` ({"on": run_steady's result, "off": ...}) with the ratios of on to off: the
    throughput, and the largest size of the table and its indexes (None where an arm failed)."""

    def ratio(key: str) -> float | None:
        on, off = arms.get("on") or {}, arms.get("off") or {}
        if "error" in on or "error" in off or not off.get(key) or on.get(key) is None:
            return None
        return round(on[key] / off[key], 3)

    return {
        **arms,
        "on_to_off_throughput": ratio("jobs_per_s"),
        "on_to_off_largest_size": ratio("largest_bytes"),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ageing", description=__doc__)
    parser.add_argument("--url", required=True, help="database URL (its jobs are lost)")
    parser.add_argument("--jobs", type=int, default=1_000_000, help="jobs drained (1,000,000)")
    parser.add_argument("--windows", type=int, default=10, help="throughput windows (10)")
    parser.add_argument("--threads", type=int, default=16, help="workers (16)")
    parser.add_argument("--batch", type=int, default=1000, help="worker_batch_size (1000)")
    parser.add_argument("--prefetch", type=int, help="prefetch (the setting's default)")
    parser.add_argument("--no-self-vacuum", action="store_true", help="self_vacuum off")
    parser.add_argument(
        "--depth", type=int, help="steady: keep this many jobs waiting (default: drain a backlog)"
    )
    parser.add_argument(
        "--compare", action="store_true", help="steady: run it with self_vacuum off, then on"
    )
    parser.add_argument("--json", help="write the result to this file")
    args = parser.parse_args(argv)
    from joobq_sql.migrate import normalize_url, upgrade

    url = normalize_url(args.url)
    upgrade(url)
    options = DrainOptions(threads=args.threads, batch=args.batch, prefetch=args.prefetch)
    self_vacuum = not args.no_self_vacuum
    if args.depth and args.compare:
        both = run_steady_both(url, args.jobs, options, args.windows, depth=args.depth)
        for line in steady_lines(both):
            print(line)
        if args.json:
            with open(args.json, "w") as out:
                json.dump(both, out, indent=2, default=str)
        return
    if args.depth:
        result = run_steady(
            url, args.jobs, options, args.windows, depth=args.depth, self_vacuum=self_vacuum
        )
        growth = f"largest {result['largest_to_start_size']}x"
    else:
        result = run(url, args.jobs, options, args.windows, self_vacuum=self_vacuum)
        growth = f"{result['end_to_start_size']}x"
    mb = 1024 * 1024
    print(
        f"self_vacuum {result['self_vacuum']}, naptime {result['autovacuum_naptime']}: "
        f"{result['vacuums']} vacuums, {result['autovacuums']} autovacuums; "
        f"last/first window {result['last_to_first_window']}, "
        f"size {result['sizes']['start']['total_bytes'] / mb:.1f} -> "
        f"{result['sizes']['end']['total_bytes'] / mb:.1f} MB ({growth})"
    )
    print("windows (jobs/s):", ", ".join(f"{w['jobs_per_s']:,.0f}" for w in result["windows"]))
    if args.json:
        with open(args.json, "w") as out:
            json.dump(result, out, indent=2, default=str)


def steady_lines(both: dict[str, Any]) -> list[str]:
    """run_steady_both's result in a few lines of text."""
    mb = 1024 * 1024
    lines = []
    for name, _ in STEADY_ARMS:
        arm = both.get(name) or {}
        if "error" in arm:
            lines.append(f"self_vacuum {name}: failed: {arm['error']}")
            continue
        lines.append(
            f"self_vacuum {name}: {arm['jobs_per_s']:,.0f} jobs/s, last/first window "
            f"{arm['last_to_first_window']}, size {arm['sizes']['start']['total_bytes'] / mb:.1f}"
            f" -> largest {arm['largest_bytes'] / mb:.1f} MB, {arm['vacuums']} vacuums, "
            f"{arm['autovacuums']} autovacuums (naptime {arm['autovacuum_naptime']})"
        )
    lines.append(
        f"on / off: throughput {both['on_to_off_throughput']}, largest size "
        f"{both['on_to_off_largest_size']}"
    )
    return lines


if __name__ == "__main__":
    main()
