"""`joobq-sql demo` on a fresh embedded PostgreSQL in a temporary data directory, with no
database URL set, and the `db` commands on that same server."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli_app import cli_env, run_cli

#: Every kind's outcome, per job: (completed, dead, runs).
OUTCOMES = {
    "emails": (1, 0, 1),
    "uploads": (1, 0, 3),  # fails twice, then succeeds
    "webhooks": (0, 1, 3),  # retries=2: three runs, then dead
    "reminders": (1, 0, 1),
    "offers": (0, 1, 0),  # expires before its delay is over: never runs
    "heartbeat": (1, 0, 1),
}
ENQUEUED = {"emails": 8, "uploads": 3, "webhooks": 2, "reminders": 3, "offers": 1}


@pytest.fixture
def embedded_env(tmp_path: Path):
    """No database URL, and an embedded server of the test's own, stopped afterwards."""
    env = cli_env(None, JOOBQ_EMBEDDED_DIR=str(tmp_path / "pg"))
    yield env
    subprocess.run(
        [sys.executable, "-c", "from joobq_sql.embedded import stop; stop()"],
        env=env,
        check=True,
        timeout=60,
    )


@pytest.mark.slow
def test_demo_runs_on_the_embedded_database_and_its_summary_matches(embedded_env, tmp_path):
    data = tmp_path / "pg"
    result = run_cli(None, "--json", "demo", env=embedded_env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert f"using the embedded PostgreSQL (data in {data})" in result.stderr
    assert "demo " in result.stderr, "progress lines on stderr when it is not a terminal"
    summary = json.loads(result.stdout)
    kinds = {kind["kind"]: kind for kind in summary["kinds"]}
    assert set(kinds) == set(OUTCOMES)
    for name, (completed, dead, runs) in OUTCOMES.items():
        kind = kinds[name]
        enqueued = ENQUEUED.get(name, kind["enqueued"])
        assert kind["enqueued"] == enqueued, kind
        assert (kind["completed"], kind["dead"], kind["runs"]) == (
            completed * enqueued,
            dead * enqueued,
            runs * enqueued,
        ), kind
    assert kinds["heartbeat"]["enqueued"] >= 2, "the recurring job ran every second"
    assert summary["seconds"] < 60

    # The same server, through the db commands.
    status = json.loads(run_cli(None, "--json", "db", "status", env=embedded_env).stdout)
    assert status["running"] is True and status["data_directory"] == str(data)
    assert status["url"].startswith("postgresql+psycopg://postgres@/joobq")
    url = run_cli(None, "db", "url", env=embedded_env).stdout.strip()
    stats = run_cli(url, "--json", "stats")
    assert {"demo-emails", "demo-offers"} <= {
        q["queue"] for q in json.loads(stats.stdout)["queues"]
    }
    stopped = run_cli(None, "db", "stop", env=embedded_env)
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    after = run_cli(None, "db", "status", env=embedded_env)
    assert "not running" in after.stdout and str(data) in after.stdout
    started = run_cli(None, "db", "start", env=embedded_env)
    assert started.returncode == 0 and "running" in started.stdout, started.stderr
