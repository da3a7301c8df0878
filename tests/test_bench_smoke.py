"""The benchmark runs end to end with tiny sizes and writes JSON with every field.

A smoke test of bench/run.py, not a measurement: no speed is asserted (the machine is shared and
noisy; figures belong in the benchmark's own output).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WORKLOADS = [
    "ceiling", "drain", "scale", "bulk", "single", "latency", "ageing", "xmin", "peers",
]  # fmt: skip
TINY = [
    "--jobs", "400",
    "--ageing-jobs", "1000",
    "--single-jobs", "30",
    "--latency-seconds", "0.5",
    "--latency-warmup", "0.2",
    "--xmin-cap", "2",
    "--timeout", "60",
]  # fmt: skip


#: The issue's command (`python -m bench --quick`) and the script it runs.
MODULE = (sys.executable, "-m", "bench")
SCRIPT = (sys.executable, str(ROOT / "bench" / "run.py"))


def run_bench(
    url: str, out: Path, *extra: str, entry: tuple[str, ...] = MODULE
) -> subprocess.CompletedProcess[str]:
    argv = [*entry, "--quick", "--url", url, "--json", str(out), *extra]
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=240)


@pytest.mark.slow
def test_every_workload_completes_and_the_json_has_every_field(
    database_url: str, tmp_path: Path
) -> None:
    out = tmp_path / "bench.json"
    result = run_bench(database_url, out, "--only", ",".join(WORKLOADS), *TINY)
    assert result.returncode == 0, result.stdout + result.stderr
    data = json.loads(out.read_text())

    assert set(data) >= {"meta", "ceiling_jobs_per_s", "workloads", "table", "failed"}
    assert data["failed"] == []
    assert data["meta"]["workloads"] == WORKLOADS
    assert {"server", "machine", "drain", "sizes"} <= set(data["meta"])
    assert "prefetch" in data["meta"]["drain"]["settings"]
    workloads = data["workloads"]
    assert list(workloads) == WORKLOADS
    for name, result_ in workloads.items():
        assert "error" not in result_, (name, result_.get("traceback"))

    assert data["ceiling_jobs_per_s"] > 0
    assert set(workloads["ceiling"]) >= {"sql", "store", "jobs_per_s", "batch", "connections"}

    drain = workloads["drain"]
    assert drain["runs"] and drain["jobs_per_s"] == drain["best"]["jobs_per_s"]
    for run in drain["runs"]:
        assert run["jobs"] == 400 and run["seconds"] > 0
        assert run["queue_stats_after"]["completed_total"] == 400
        assert run["queue_stats_after"]["waiting"] == 0

    scale = workloads["scale"]
    assert scale["processes"] >= 2 and scale["drain"]["processes"] == scale["processes"]
    assert scale["drain"]["queue_stats_after"]["completed_total"] == 400
    assert scale["ceiling"]["jobs_per_s"] > 0 and scale["jobs_per_s"] > 0
    assert scale["of_own_ceiling"] > 0 and scale["to_one_process"] > 0

    bulk = workloads["bulk"]
    assert [r["batch_size"] for r in bulk["runs"]] == [1000, 5000, 400]
    assert all(r["path"] in ("COPY", "multi-row INSERT") for r in bulk["runs"])
    assert "COPY" in bulk["copy"]

    single = workloads["single"]
    assert single["jobs"] == 30 and {"p50_ms", "p99_ms", "jobs_per_s"} <= set(single)

    latency = workloads["latency"]
    assert {"p50_ms", "p99_ms", "max_ms", "jobs_measured", "target_rate"} <= set(latency)
    assert latency["jobs_not_started"] == 0

    ageing = workloads["ageing"]
    assert len(ageing["windows"]) == 10 and ageing["window_jobs"] == 100
    assert {"start", "end"} == set(ageing["sizes"])
    for sizes in ageing["sizes"].values():
        assert {"total_bytes", "table_bytes", "indexes_bytes"} <= set(sizes)
    assert "last_to_first_window" in ageing and "end_to_start_size" in ageing

    xmin = workloads["xmin"]
    assert xmin["errors"] == []
    assert xmin["pinned"]["jobs"] == xmin["unpinned"]["jobs"] == 400
    assert xmin["pin"]["backend_xmin"] is not None and xmin["pinned_to_unpinned"] > 0

    for peer in ("pgqueuer", "procrastinate"):
        entry = workloads["peers"][peer]
        assert "skipped" in entry or {"drain", "latency", "version"} <= set(entry), entry

    assert any(row["workload"] == "ceiling" for row in data["table"])
    assert "of ceiling" in result.stdout


def test_an_unknown_workload_is_a_usage_error(tmp_path: Path) -> None:
    result = run_bench(
        "postgresql://unused@127.0.0.1:1/x", tmp_path / "x.json", "--only", "nope", entry=SCRIPT
    )
    assert result.returncode == 2 and "unknown workloads" in result.stderr
