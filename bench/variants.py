"""What one round of the benchmark runs: for each repeated workload, its variants (a system at
one setting), in the order that alternates the systems. run.py runs every round's variants,
rotated by one each round, and summarizes each variant over the rounds.

A variant's `run(url, meter)` is one repetition on the database of its `database` kind; it
returns the figures of that repetition (with a `jobs` count, for the Meter's per-job costs).
A variant with `split` is a workload module that measures several series itself, alternating
them (bulk.py, single.py): `split` turns its result into one result per series.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from bench import bulk, ceiling, drain, latency, peers, single, wal
from bench.drain import DEFAULTS, DrainOptions
from bench.meter import Meter

#: The systems a run can compare; --systems picks among them.
SYSTEMS = ("joobq-sql", "pgqueuer", "procrastinate")


@dataclass(frozen=True)
class Variant:
    key: str
    system: str
    label: str
    #: the database it runs on: "joobq" (ours, migrated), "pgqueuer" or "procrastinate"
    database: str
    run: Callable[[str, Meter | None], dict[str, Any]]
    metered: bool = True
    split: Callable[[dict[str, Any]], dict[str, dict[str, Any]]] | None = None
    #: lifecycles for the Meter's costs (None: enqueue + drain when both are phases)
    lifecycles: dict[str, list[str]] | None = None
    #: per-phase job counts, from the result (None: every phase moved result["jobs"])
    phase_jobs: Callable[[dict[str, Any]], dict[str, int]] | None = None


@dataclass(frozen=True)
class Sizes:
    jobs: int
    bulk_jobs: int
    single_jobs: int
    wal_jobs: int
    latency_seconds: float
    latency_warmup: float
    rate: float
    processes: int
    #: procrastinate's drain: at its default concurrency of 1 it drains a few hundred jobs a
    #: second, so a full backlog would take minutes per round; its rate hardly depends on it
    procrastinate_jobs: int
    tuned: DrainOptions
    timeout: float
    ceiling_engine: str


def _drain(options: DrainOptions, jobs: int) -> Callable[[str, Meter | None], dict[str, Any]]:
    return lambda url, meter: drain.drain(url, jobs, options, meter=meter)


def ceiling_variants(s: Sizes) -> list[Variant]:
    def claim(batch: int, clients: int) -> Callable[[str, Meter | None], dict[str, Any]]:
        return lambda url, meter: ceiling.measure(
            url, s.jobs, batch, clients, engine=s.ceiling_engine, meter=meter
        )

    two = s.processes
    return [
        Variant("ceiling/claim-100", "ceiling", "claim 100 + complete, 1 client", "joobq",
                claim(100, 1)),
        Variant("ceiling/claim-1000", "ceiling", "claim 1000 + complete, 1 client", "joobq",
                claim(1000, 1)),
        Variant(f"ceiling/claim-1000 x{two}", "ceiling",
                f"claim 1000 + complete, {two} clients", "joobq", claim(1000, two)),
        Variant("ceiling/store-1000", "ceiling",
                "PostgresStore.claim_jobs(1000) + complete_jobs, 1 thread", "joobq",
                lambda url, meter: ceiling.store_measure(url, s.jobs, 1000, meter=meter)),
    ]  # fmt: skip


def drain_variants(s: Sizes) -> list[Variant]:
    tuned_two = replace(s.tuned, processes=s.processes, timeout=s.timeout)
    tuned = replace(s.tuned, timeout=s.timeout)
    n = s.jobs
    return [
        Variant("joobq-sql/default", "joobq-sql",
                'app.queue("bench", jobs=[NoopJob]): defaults', "joobq",
                _drain(replace(DEFAULTS, timeout=s.timeout), n)),
        Variant("pgqueuer/default", "pgqueuer",
                f"PgQueuer.run(mode=drain): its defaults (batch {peers.PGQ_DEFAULT_BATCH})",
                "pgqueuer",
                lambda url, meter: peers.pgq_drain(url, n, timeout=s.timeout, meter=meter)),
        Variant("joobq-sql/workers=10", "joobq-sql", "workers=10 (as the README)", "joobq",
                _drain(DrainOptions(threads=10, timeout=s.timeout), n)),
        Variant("pgqueuer/batch=100", "pgqueuer", "PgQueuer.run(batch_size=100, mode=drain)",
                "pgqueuer",
                lambda url, meter: peers.pgq_drain(url, n, batch=100, timeout=s.timeout,
                                                   meter=meter)),
        Variant("joobq-sql/tuned", "joobq-sql", f"tuned: {drain.describe(tuned)}", "joobq",
                _drain(tuned, n)),
        Variant("procrastinate/default", "procrastinate",
                "run_worker_async(wait=False): its defaults (concurrency 1), "
                f"{s.procrastinate_jobs:,} jobs", "procrastinate",
                lambda url, meter: peers.proc_drain(url, s.procrastinate_jobs,
                                                    timeout=s.timeout, meter=meter)),
        Variant(f"joobq-sql/tuned x{s.processes}", "joobq-sql",
                f"tuned: {drain.describe(tuned_two)}", "joobq", _drain(tuned_two, n)),
    ]  # fmt: skip


def latency_variants(s: Sizes) -> list[Variant]:
    rate, seconds, warmup = s.rate, s.latency_seconds, s.latency_warmup
    return [
        Variant("joobq-sql/default", "joobq-sql",
                "JoobQ(database_url=...) at its defaults, Job.enqueue", "joobq",
                lambda url, meter: latency.run(url, rate=rate, seconds=seconds, warmup=warmup,
                                               meter=meter)),
        Variant("pgqueuer/default", "pgqueuer", "PgQueuer.run() at its defaults", "pgqueuer",
                lambda url, meter: peers.pgq_latency(url, rate=rate, seconds=seconds,
                                                     warmup=warmup, meter=meter)),
        Variant("procrastinate/default", "procrastinate",
                "run_worker_async() at its defaults", "procrastinate",
                lambda url, meter: peers.proc_latency(url, rate=rate, seconds=seconds,
                                                      warmup=warmup, meter=meter)),
    ]  # fmt: skip


def wal_variants(s: Sizes) -> list[Variant]:
    return [
        Variant(
            "joobq-sql/steps",
            "joobq-sql",
            "Job.enqueue, Job.batch_enqueue(1000), claim_jobs(1000), complete_jobs, apart",
            "joobq",
            lambda url, meter: wal.run(
                url, s.wal_jobs, single_jobs=min(s.single_jobs, s.wal_jobs), meter=meter
            ),
            lifecycles={
                "lifecycle (single enqueue)": ["enqueue_single", "claim", "complete"],
                "lifecycle (bulk enqueue)": ["enqueue_bulk", "claim", "complete"],
            },
            phase_jobs=lambda result: result["phase_jobs"],
        )
    ]


# -- bulk.py and single.py: they alternate their own series; one call per round ---------------


def _accepts(function: Callable[..., Any], name: str) -> bool:
    return name in inspect.signature(function).parameters


def bulk_variants(s: Sizes) -> list[Variant]:
    def run(url: str, meter: Meter | None) -> dict[str, Any]:
        if _accepts(bulk.run, "repetitions"):
            return bulk.run(url, s.bulk_jobs, repetitions=1)
        return bulk.run(url, s.bulk_jobs)

    return [
        Variant("bulk.py", "joobq-sql", "bench/bulk.py: its series alternated", "joobq", run,
                metered=False, split=split_bulk)
    ]  # fmt: skip


def split_bulk(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """bulk.run's result as one result per series."""
    out: dict[str, dict[str, Any]] = {}
    for name, series in (result.get("public") or {}).items():
        out[f"joobq-sql/{name}"] = {
            "system": "joobq-sql",
            "label": f"{name}, {series.get('batch_size', '?'):,} built jobs per call",
            "jobs_per_s": series["jobs_per_s"],
        }
    for run in result.get("runs", []):
        calls = "1 call" if run.get("calls") == 1 else f"calls of {run['batch_size']:,}"
        key = "all" if run["batch_size"] == run.get("jobs") else str(run["batch_size"])
        out[f"joobq-sql/store.enqueue_jobs {key}"] = {
            "system": "joobq-sql",
            "label": f"store.enqueue_jobs of prebuilt rows, {calls} ({run.get('path', '?')})",
            "jobs_per_s": run["jobs_per_s"],
        }
    pgq = result.get("pgqueuer")
    if isinstance(pgq, dict) and "jobs_per_s" in pgq:
        out["pgqueuer/enqueue"] = {
            "system": "pgqueuer",
            "label": f"Queries.enqueue, {pgq.get('batch_size', '?'):,} jobs per call",
            "jobs_per_s": pgq["jobs_per_s"],
        }
    elif isinstance(pgq, dict) and "skipped" in pgq:
        out["pgqueuer/enqueue"] = {"system": "pgqueuer", "skipped": pgq["skipped"]}
    return out


def single_variants(s: Sizes) -> list[Variant]:
    def run(url: str, meter: Meter | None) -> dict[str, Any]:
        if _accepts(single.run, "repetitions"):
            return single.run(url, s.single_jobs, repetitions=1)
        return single.run(url, s.single_jobs)

    return [
        Variant("single.py", "joobq-sql", "bench/single.py: its series alternated", "joobq",
                run, metered=False, split=split_single)
    ]  # fmt: skip


_SINGLE_SERIES = {
    "sync": ("joobq-sql/Job.enqueue", "joobq-sql", "Job.enqueue, one commit each"),
    "async": ("joobq-sql/Job.enqueue_async", "joobq-sql", "await Job.enqueue_async, one each"),
    "pgqueuer": ("pgqueuer/enqueue", "pgqueuer", "await Queries.enqueue, one statement each"),
}


def split_single(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """single.run's result as one result per series (an older single.py: its one series)."""
    series = result.get("series") or {"sync": result}
    out: dict[str, dict[str, Any]] = {}
    for name, figures in series.items():
        key, system, label = _SINGLE_SERIES.get(name, (f"joobq-sql/{name}", "joobq-sql", name))
        out[key] = {
            "system": system,
            "label": label,
            **{k: figures[k] for k in ("jobs_per_s", "p50_ms", "p99_ms") if k in figures},
        }
    pgq = result.get("pgqueuer")
    if isinstance(pgq, dict) and "skipped" in pgq and "pgqueuer/enqueue" not in out:
        out["pgqueuer/enqueue"] = {"system": "pgqueuer", "skipped": pgq["skipped"]}
    return out


BUILDERS: dict[str, Callable[[Sizes], list[Variant]]] = {
    "ceiling": ceiling_variants,
    "drain": drain_variants,
    "bulk": bulk_variants,
    "single": single_variants,
    "latency": latency_variants,
    "wal": wal_variants,
}


def rotated(variants: list[Variant], round_index: int) -> list[Variant]:
    """The round's order: the list rotated by one per round, so that no variant always runs
    first or last (the list itself alternates the systems)."""
    if not variants:
        return []
    shift = round_index % len(variants)
    return variants[shift:] + variants[:shift]
