"""The README's commands are the ones CI and users run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _ci_command() -> str:
    lines = (ROOT / ".ci" / "run").read_text().splitlines()
    return next(line for line in lines if "pytest" in line and not line.startswith("#"))


def test_ci_runs_exactly_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    assert _ci_command() in readme.splitlines()


@pytest.mark.slow
def test_the_readme_example_runs_against_a_real_database(database_url: str) -> None:
    env = {**os.environ, "JOOBQ_DATABASE_URL": database_url}
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "store_roundtrip.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "hello, Ada" in result.stdout
    assert "completed 4 jobs; waiting=0 running=0 completed so far=4" in result.stdout


@pytest.mark.slow
def test_the_worker_example_runs_its_jobs_to_the_end(database_url: str) -> None:
    env = {**os.environ, "JOOBQ_DATABASE_URL": database_url}
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "worker_app.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "built report weekly on attempt 2" in result.stdout
    assert "mail: completed=4 retried=1 dead=0" in result.stdout
