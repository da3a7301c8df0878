"""The benchmark runs end to end with tiny sizes and writes JSON with every field.

A smoke test of `python -m bench`, not a measurement: no speed is asserted (the machine is
shared and noisy; figures belong in the benchmark's own output). One round, so that it stays
short; tests/test_bench_harness.py checks the rounds' order and summaries.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
WORKLOADS = ["ceiling", "drain", "bulk", "single", "latency", "wal", "ageing", "steady", "xmin"]
REPEATED = WORKLOADS[:6]
TINY = [
    "--rounds", "1",
    "--jobs", "400",
    "--bulk-jobs", "2000",
    "--single-jobs", "30",
    "--wal-jobs", "400",
    "--procrastinate-jobs", "100",
    "--ageing-jobs", "1000",
    "--steady-jobs", "500",
    "--steady-depth", "100",
    "--latency-seconds", "0.5",
    "--latency-warmup", "0.2",
    "--xmin-cap", "2",
    "--timeout", "60",
]  # fmt: skip
#: Every variant of the repeated workloads, by workload; a peer's may be skipped.
VARIANTS = {
    "ceiling": ["ceiling/claim-100", "ceiling/claim-1000", "ceiling/claim-1000 x2",
                "ceiling/store-1000"],
    "drain": ["joobq-sql/default", "pgqueuer/default", "joobq-sql/workers=10",
              "pgqueuer/batch=100", "joobq-sql/tuned", "procrastinate/default",
              "joobq-sql/tuned x2"],
    "bulk": ["joobq-sql/Job.batch_enqueue", "joobq-sql/store.enqueue_jobs 1000",
             "pgqueuer/enqueue"],
    "single": ["joobq-sql/Job.enqueue", "pgqueuer/enqueue"],
    "latency": ["joobq-sql/default", "pgqueuer/default", "procrastinate/default"],
    "wal": ["joobq-sql/steps"],
}  # fmt: skip
#: The verdict's targets (issue 15's acceptance list, and item 3's bulk ratio).
TARGETS = 15


#: The issue's command (`python -m bench --quick`) and the script it runs.
MODULE = (sys.executable, "-m", "bench")
SCRIPT = (sys.executable, str(ROOT / "bench" / "run.py"))


def run_bench(
    url: str, out: Path, *extra: str, entry: tuple[str, ...] = MODULE
) -> subprocess.CompletedProcess[str]:
    argv = [*entry, "--quick", "--url", url, "--json", str(out), *extra]
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=400)


def _runs(workloads: dict[str, Any], workload: str, key: str) -> list[dict[str, Any]]:
    variant = workloads[workload]["variants"][key]
    assert "runs" in variant, (workload, key, variant)
    return list(variant["runs"])


@pytest.mark.slow
def test_every_workload_completes_and_the_json_has_every_field(
    database_url: str, tmp_path: Path
) -> None:
    out = tmp_path / "bench.json"
    result = run_bench(database_url, out, "--only", ",".join(WORKLOADS), *TINY)
    assert result.returncode == 0, result.stdout + result.stderr
    data = json.loads(out.read_text())

    assert set(data) >= {"meta", "ceiling_jobs_per_s", "workloads", "verdict", "tables", "failed"}
    assert data["failed"] == []
    meta = data["meta"]
    assert meta["workloads"] == WORKLOADS and meta["rounds"] == 1
    assert {"server", "machine", "sizes", "settings", "peers", "commit", "load"} <= set(meta)
    assert {"defaults", "tuned"} == set(meta["settings"])
    assert "autovacuum_naptime" in meta["server"]
    workloads = data["workloads"]
    assert list(workloads) == WORKLOADS
    for name in ("ageing", "steady", "xmin"):
        assert "error" not in workloads[name], workloads[name].get("traceback")

    for workload in REPEATED:
        found = workloads[workload]
        assert len(found["order"]) == 1, workload
        for key in VARIANTS[workload]:
            variant = found["variants"][key]
            if "skipped" in variant:  # a peer that is not installed
                assert not key.startswith("joobq-sql/") and not key.startswith("ceiling/")
                continue
            runs = _runs(workloads, workload, key)
            assert len(runs) == 1 and runs[0]["round"] == 1, (workload, key)
            assert "error" not in runs[0], (workload, key, runs[0].get("traceback"))
            assert variant["summary"] or variant["costs"], (workload, key)
            for figures in variant["summary"].values():
                assert figures["min"] <= figures["median"] <= figures["max"], (workload, key)

    assert data["ceiling_jobs_per_s"] > 0
    for key in VARIANTS["ceiling"]:
        (run,) = _runs(workloads, "ceiling", key)
        assert run["jobs"] == 400 and run["jobs_per_s"] > 0 and run["engine"]
    assert _runs(workloads, "ceiling", "ceiling/claim-1000 x2")[0]["clients"] == 2

    for key in VARIANTS["drain"]:
        variant = workloads["drain"]["variants"][key]
        if "skipped" in variant:
            continue
        (run,) = variant["runs"]
        assert run["seconds"] > 0
        # metered: the fill and the drain apart, and the two together per job
        assert {"enqueue", "drain", "lifecycle"} <= set(run["costs"]), key
        for phase in ("enqueue", "drain"):
            assert run["costs"][phase]["wal_bytes_per_job"] > 0, (key, phase)
            assert run["costs"][phase]["commits_per_job"] > 0, (key, phase)
    for key in ("joobq-sql/default", "joobq-sql/workers=10", "joobq-sql/tuned"):
        (run,) = _runs(workloads, "drain", key)
        assert run["queue_stats_after"]["completed_total"] == 400
        assert run["queue_stats_after"]["waiting"] == 0
    (two,) = _runs(workloads, "drain", "joobq-sql/tuned x2")
    assert two["processes"] == 2

    (public,) = _runs(workloads, "bulk", "joobq-sql/Job.batch_enqueue")
    assert public["jobs_per_s"] > 0
    (sync,) = _runs(workloads, "single", "joobq-sql/Job.enqueue")
    assert {"jobs_per_s", "p50_ms", "p99_ms"} <= set(sync)

    for key in VARIANTS["latency"]:
        variant = workloads["latency"]["variants"][key]
        if "skipped" in variant:
            continue
        (run,) = variant["runs"]
        assert {"p50_ms", "p99_ms", "max_ms", "jobs_measured", "target_rate"} <= set(run)
        assert run["jobs_not_started"] == 0, key
        assert run["costs"]["latency"]["commits_per_job"] > 0

    (steps,) = _runs(workloads, "wal", "joobq-sql/steps")
    for phase in ("enqueue_single", "enqueue_bulk", "claim", "complete"):
        assert steps["costs"][phase]["wal_bytes_per_job"] > 0, phase
    assert steps["costs"]["enqueue_single"]["commits_per_job"] >= 1  # one commit per enqueue
    assert {"lifecycle (single enqueue)", "lifecycle (bulk enqueue)"} <= set(steps["costs"])

    ageing = workloads["ageing"]
    assert len(ageing["windows"]) == 10 and ageing["window_jobs"] == 100
    assert {"start", "end"} == set(ageing["sizes"])
    for sizes in ageing["sizes"].values():
        assert {"total_bytes", "table_bytes", "indexes_bytes"} <= set(sizes)
    assert "last_to_first_window" in ageing and "end_to_start_size" in ageing
    assert ageing["costs"]["workload"]["wal_bytes_per_job"] > 0

    steady = workloads["steady"]  # the steady depth, the workers' self_vacuum on and off
    assert (steady["jobs"], steady["depth"]) == (500, 100)
    for arm, enabled in (("on", True), ("off", False)):
        assert "error" not in steady[arm], steady[arm].get("traceback")
        assert steady[arm]["self_vacuum"] is enabled and steady[arm]["jobs"] == 500
        # what the worker processes ran with (the fork server that starts them keeps the
        # environment of its own start: a variable set later in this process missed them)
        assert steady[arm]["workers_self_vacuum"] == [enabled], arm
        assert steady[arm]["jobs_per_s"] > 0 and steady[arm]["largest_bytes"] > 0
        assert {"start", "end"} == set(steady[arm]["sizes"])
    assert steady["on_to_off_throughput"] > 0 and steady["on_to_off_largest_size"] > 0
    once = {(row["workload"], row["metric"]) for row in data["tables"]["once"]}
    assert {("steady", "self_vacuum on: jobs/s"), ("steady", "self_vacuum off: jobs/s"),
            ("steady", "on / off largest size")} <= once  # fmt: skip

    xmin = workloads["xmin"]
    assert xmin["errors"] == []
    assert xmin["pinned"]["jobs"] == xmin["unpinned"]["jobs"] == 400
    assert xmin["pin"]["backend_xmin"] is not None and xmin["pinned_to_unpinned"] > 0

    verdicts = data["verdict"]
    assert len(verdicts) == TARGETS
    for row in verdicts:
        assert {"target", "measured", "value", "threshold", "met"} <= set(row), row
        assert row["met"] in (True, False, None)
    by_target = {row["target"]: row for row in verdicts}
    wal = next(row for target, row in by_target.items() if target.startswith("WAL per"))
    assert wal["value"] > 0 and wal["met"] in (True, False)
    drain_ceiling = next(row for t, row in by_target.items() if "claim-1000 ceiling (1" in t)
    assert drain_ceiling["value"] > 0

    assert {"results", "costs", "once"} <= set(data["tables"])
    assert "verdict (issue 15's acceptance)" in result.stdout
    assert "WAL and commits per job" in result.stdout


def test_an_unknown_workload_is_a_usage_error(tmp_path: Path) -> None:
    result = run_bench(
        "postgresql://unused@127.0.0.1:1/x", tmp_path / "x.json", "--only", "nope", entry=SCRIPT
    )
    assert result.returncode == 2 and "unknown workloads" in result.stderr
