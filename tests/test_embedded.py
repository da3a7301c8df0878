"""With no database URL, joobq-sql starts, creates and migrates an embedded PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


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
    finally:
        subprocess.run(
            [sys.executable, "-c", "from joobq_sql.embedded import stop; stop()"],
            env=env,
            check=True,
            timeout=60,
        )
    assert not (data / "postmaster.pid").exists()
