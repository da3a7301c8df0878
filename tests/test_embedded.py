"""With no database URL, joobq-sql starts, creates and migrates an embedded PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHOW_NAPTIME = """
import psycopg
from joobq_sql.embedded import server_url
url = server_url("postgres").replace("postgresql+psycopg://", "postgresql://", 1)
with psycopg.connect(url) as conn:
    print(conn.execute("SHOW autovacuum_naptime").fetchone()[0])
"""


@pytest.mark.slow
def test_the_example_runs_on_the_embedded_server_when_no_url_is_set(tmp_path: Path) -> None:
    data = tmp_path / "embedded"
    env = {k: v for k, v in os.environ.items() if k not in ("JOOBQ_DATABASE_URL", "DATABASE_URL")}
    env["JOOBQ_EMBEDDED_DIR"] = str(data)
    try:
        for run in (1, 2):  # the second run finds the server already up and migrated
            result = subprocess.run(
                [sys.executable, str(ROOT / "examples" / "store_roundtrip.py")],
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert result.returncode == 0, result.stderr
            assert f"using the embedded PostgreSQL (data in {data})" in result.stdout
            assert f"completed so far={4 * run}" in result.stdout
        # The server is tuned for a job queue: autovacuum wakes every 5 s, not every minute.
        shown = subprocess.run(
            [sys.executable, "-c", SHOW_NAPTIME], env=env, capture_output=True, text=True
        )
        assert shown.stdout.strip() == "5s", shown.stderr
    finally:
        subprocess.run(
            [sys.executable, "-c", "from joobq_sql.embedded import stop; stop()"],
            env=env,
            check=True,
            timeout=60,
        )
    assert not (data / "postmaster.pid").exists()
