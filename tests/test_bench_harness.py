"""The benchmark harness's parts (bench/): the repetitions' summaries, the order of a round,
the verdict's arithmetic, the WAL and commit meter, and the pgbench ceiling's script.

Measurements are not asserted here (the smoke test runs the whole benchmark); what is
asserted is that the harness computes and counts what it says it does.
"""

from __future__ import annotations

import math
import time
from typing import Any

import psycopg
import pytest
from sqlalchemy.engine import make_url

from bench import ageing, ceiling, report, variants, verdict
from bench._common import libpq, summary
from bench.meter import Meter, costs


def test_a_summary_is_the_min_median_and_max_of_the_repetitions() -> None:
    assert summary([3.0, 1.0, 2.0]) == {"min": 1.0, "median": 2.0, "max": 3.0, "n": 3}
    assert summary([4.0, 1.0, 2.0, 3.0])["median"] == 2.5
    assert summary([1.0, math.nan, None])["n"] == 1  # type: ignore[list-item]
    assert summary([]) == {"min": None, "median": None, "max": None, "n": 0}


def test_each_round_starts_with_the_next_variant() -> None:
    listed = variants.drain_variants(_sizes())
    keys = [v.key for v in listed]
    assert [v.system for v in listed[:2]] == ["joobq-sql", "pgqueuer"]  # systems alternate
    firsts = [variants.rotated(listed, r)[0].key for r in range(len(listed))]
    assert firsts == keys
    for r in range(3):
        assert sorted(v.key for v in variants.rotated(listed, r)) == sorted(keys)


def _sizes() -> variants.Sizes:
    from bench.drain import TUNED

    return variants.Sizes(
        jobs=100, bulk_jobs=100, single_jobs=10, wal_jobs=100, latency_seconds=1.0,
        latency_warmup=0.1, rate=200.0, processes=2, procrastinate_jobs=50, tuned=TUNED,
        timeout=60.0, ceiling_engine="auto",
    )  # fmt: skip


def _entry(system: str, rates: list[float], **more: list[float]) -> dict[str, Any]:
    runs = [{"round": i + 1, "jobs_per_s": rate} for i, rate in enumerate(rates)]
    for metric, values in more.items():
        for run, value in zip(runs, values, strict=True):
            run[metric] = value
    found: dict[str, Any] = {"system": system, "label": system, "runs": runs}
    report.summarize(found)
    return found


def _results() -> dict[str, Any]:
    return {
        "drain": {
            "variants": {
                "joobq-sql/default": _entry("joobq-sql", [300.0, 100.0, 200.0]),
                "pgqueuer/default": _entry("pgqueuer", [100.0, 100.0, 50.0]),
            }
        },
        "latency": {
            "variants": {
                "joobq-sql/default": _entry("joobq-sql", [1, 1, 1], p50_ms=[1.5, 3.0, 1.8]),
            }
        },
    }


def test_the_verdict_divides_the_medians_and_gives_each_rounds_ratio() -> None:
    rows = {row["target"]: row for row in verdict.verdict(_results(), processes=2)}
    drain = rows["default drain >= 2x pgqueuer at its defaults"]
    assert drain["value"] == 2.0 and drain["met"] is True  # 200 / 100
    assert drain["rounds"] == [3.0, 1.0, 4.0]
    assert "rounds 1.00-4.00" in drain["measured"]
    pickup = rows["pickup p50 <= 2 ms at 200/s (a quiet machine)"]
    assert pickup["value"] == 1.8 and pickup["met"] is True


def test_a_target_without_its_figures_is_not_measured_rather_than_missed() -> None:
    rows = {row["target"]: row for row in verdict.verdict(_results(), processes=2)}
    batch = rows["default drain >= 1x pgqueuer at batch 100"]  # no pgqueuer batch=100 ran
    assert batch["met"] is None and batch["measured"] == "not measured"
    assert rows["pickup p50 no worse than pgqueuer's"]["met"] is None
    assert len(rows) == 15


def test_ageing_off_the_default_naptime_is_reported_but_not_judged() -> None:
    ageing = {"windows": [{}], "last_to_first_window": 0.95, "end_to_start_size": 1.1}
    at = {**ageing, "autovacuum_naptime": "1min"}
    off = {**ageing, "autovacuum_naptime": "5s"}
    judged = [r for r in verdict.verdict({"ageing": at}, processes=2) if "ageing" in r["target"]]
    assert [r["met"] for r in judged] == [True, True]
    shown = [r for r in verdict.verdict({"ageing": off}, processes=2) if "ageing" in r["target"]]
    assert [r["met"] for r in shown] == [None, None] and "naptime 5s" in shown[0]["measured"]


def _commits(url: str) -> int:
    """The database's committed transactions, read from the server's postgres database."""
    parsed = make_url(url)
    admin = libpq(parsed.set(database="postgres").render_as_string(hide_password=False))
    with psycopg.connect(admin, autocommit=True) as conn:
        row = conn.execute(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = %s", (parsed.database,)
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_the_meter_counts_the_commits_and_wal_of_the_sessions_a_phase_opens(
    database_url: str,
) -> None:
    before = _commits(database_url)
    with psycopg.connect(libpq(database_url), autocommit=True) as conn:
        conn.execute("CREATE TABLE metered (n int)")
    # the set-up session's two transactions (its start-up and the CREATE) are reported as its
    # backend exits, a moment after the close: wait for them, so they are not the phase's
    deadline = time.monotonic() + 30
    while _commits(database_url) < before + 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    with Meter(database_url) as meter:
        meter.begin("inserts")
        with psycopg.connect(libpq(database_url), autocommit=True) as conn:
            for n in range(25):
                conn.execute("INSERT INTO metered VALUES (%s)", (n,))
        meter.end(harness_commits=6)  # as if six were the benchmark's own
        phase = meter.phases["inserts"]
    # 25 inserts and the session's start-up transaction, less the six: counted once the
    # session closed and reported its statistics, not before. An autovacuum worker's visit
    # to the database (once a naptime) commits a few transactions of its own there too.
    assert 20 <= phase["commits"] <= 23 and phase["sessions_still_open"] == 0
    assert phase["rollbacks"] == 0
    assert phase["wal_bytes"] > 0 and phase["wal_records"] >= 25
    per = costs(meter, {"inserts": phase["commits"]})["inserts"]
    assert per["commits_per_job"] == 1.0 and per["wal_bytes_per_job"] > 0


def test_the_ceiling_script_runs_the_stores_statements_with_pgbench_variables() -> None:
    script = ceiling.pgbench_script(180000)
    claim, complete = script.split("\\gset")
    assert "%(" not in script and "--" not in script
    assert "FOR UPDATE SKIP LOCKED" in claim and ":limit" in claim and ":client_id" in claim
    assert "DELETE FROM" in complete and ":jids::uuid[]" in complete
    assert complete.strip().endswith(";") and claim.count(";") == 0


@pytest.mark.skipif(ceiling.pgbench() is None, reason="no pgbench here")
def test_the_pgbench_ceiling_completes_every_job(database_url: str) -> None:
    result = ceiling.measure(database_url, 300, 100, 2, engine="pgbench")
    assert result["jobs"] == 300 and result["clients"] == 2
    assert result["engine"].startswith("pgbench") and result["jobs_per_s"] > 0


def _steady_arm(self_vacuum: bool, rate: float, largest_mb: float) -> dict[str, Any]:
    mb = 1_000_000
    return {
        "self_vacuum": self_vacuum,
        "jobs_per_s": rate,
        "windows": [{"jobs_per_s": rate}, {"jobs_per_s": rate * 0.9}],
        "last_to_first_window": 0.9,
        "sizes": {"start": {"total_bytes": 1 * mb}, "end": {"total_bytes": int(largest_mb * mb)}},
        "largest_bytes": int(largest_mb * mb),
        "largest_to_start_size": largest_mb,
        "largest_dead_share": 0.5,
        "vacuums": 40 if self_vacuum else 0,
        "autovacuums": 1,
        "autovacuum_naptime": "1min",
    }


def test_python_m_bench_runs_the_steady_depth_ageing_once_after_the_rounds() -> None:
    from bench import run

    assert run.ONCE.index("steady") == run.ONCE.index("ageing") + 1  # once, after the rounds
    args = run.parse_args([])
    assert "steady" in args.selected and args.steady_jobs == 1_000_000 and args.steady_depth
    quick = run.parse_args(["--quick"])
    assert quick.steady_jobs <= quick.ageing_jobs and quick.steady_depth <= args.steady_depth


def test_the_steady_workload_compares_self_vacuum_on_and_off() -> None:
    result = ageing.steady_comparison(
        {"on": _steady_arm(True, 1000.0, 12.0), "off": _steady_arm(False, 800.0, 240.0)}
    )
    assert result["on_to_off_throughput"] == 1.25
    assert result["on_to_off_largest_size"] == 0.05
    rows = report.steady_rows({**result, "jobs": 1000, "depth": 40})
    text = [" ".join(r) for r in rows]
    assert all(r[0] == "steady" for r in rows)
    assert "steady self_vacuum on: jobs/s 1,000" in text, text
    assert "steady self_vacuum off: jobs/s 800" in text, text
    assert "steady self_vacuum off: table+indexes largest (MB) 240.0" in text, text
    for arm in ("self_vacuum on", "self_vacuum off"):
        assert any(arm in t and "last / first window" in t for t in text), text
        assert any(arm in t and "vacuums" in t for t in text), text
    assert any("on / off throughput" in t and "1.25x" in t for t in text), text
    assert any("on / off largest size" in t and "0.05x" in t for t in text), text
    # an arm that failed is named, and the other is still shown
    broken = report.steady_rows({"jobs": 1000, "depth": 40, "on": _steady_arm(True, 1.0, 1.0),
                                 "off": {"error": "RuntimeError: boom"}})  # fmt: skip
    assert any("self_vacuum off" in " ".join(r) and "boom" in " ".join(r) for r in broken)


def test_the_backlog_ageing_drain_runs_its_workers_with_the_self_vacuum_asked(
    database_url: str,
) -> None:
    # The worker processes come from a fork server that keeps the environment of its own start
    # (the first drain of this process): a setting given through this process's environment
    # for a later drain never reached them. Each worker now sets it itself and says so.
    options = ageing.DrainOptions(threads=2, batch=100, prefetch=100, timeout=60)
    for self_vacuum in (True, False, True):
        result = ageing.run(database_url, 300, options, 3, self_vacuum=self_vacuum)
        assert result["self_vacuum"] is self_vacuum
        assert result["workers_self_vacuum"] == [self_vacuum]
