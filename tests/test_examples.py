"""Every program in examples/ (of the asyncio and integrations issue) runs, and does what it
says: each as its own process, on the test's database, with its outcome checked in the output
and in the database itself."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg

from tests.conftest import libpq_url

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def run(args: list[str], database_url: str | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if database_url is not None:
        env["JOOBQ_DATABASE_URL"] = database_url
    result = subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result


def rows(database_url: str, query: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(libpq_url(database_url)) as conn:
        return conn.execute(query).fetchall()


SIGNUP_OUTPUT = [
    "signup ada@example.com: 201",
    "signup grace@example.com: 201",
    "signup mallory@blocked.example: 422",
    "signup ada@example.com: 409",
    "welcomes sent: ada@example.com, grace@example.com",
    "mail: completed=2 waiting=0",
]


def check_signups(database_url: str, stdout: str) -> None:
    for line in SIGNUP_OUTPUT:
        assert line in stdout
    users = rows(database_url, "SELECT email FROM example_users ORDER BY email")
    assert users == [("ada@example.com",), ("grace@example.com",)]
    welcomes = rows(database_url, "SELECT email FROM example_welcomes ORDER BY email")
    assert welcomes == users  # one welcome per committed signup, none for the rolled back one
    assert rows(database_url, "SELECT count(*) FROM joobq.jobs") == [(0,)]


def test_the_fastapi_app_enqueues_in_its_request_transaction(database_url: str) -> None:
    result = run([str(EXAMPLES / "fastapi_signup.py")], database_url)
    check_signups(database_url, result.stdout)


def test_the_flask_app_enqueues_in_its_request_transaction(database_url: str) -> None:
    result = run([str(EXAMPLES / "flask_signup.py")], database_url)
    check_signups(database_url, result.stdout)


def test_the_cron_and_retries_script_shows_each_behaviour(database_url: str) -> None:
    result = run([str(EXAMPLES / "cron_and_retries.py")], database_url)
    assert "heartbeats: >= 2" in result.stdout
    assert "rollups: >= 2" in result.stdout
    assert "prices fetched on attempt 3" in result.stdout
    assert "import: dead after 2 runs (retries exhausted" in result.stdout
    ticks = dict(
        rows(database_url, "SELECT schedule, count(*) FROM joobq.schedule_ticks GROUP BY 1")
    )
    assert len(ticks) == 2 and all(count >= 1 for count in ticks.values())


def test_the_memory_store_unit_tests_pass() -> None:
    result = run(
        [
            "-m",
            "pytest",
            str(EXAMPLES / "test_with_memory_store.py"),
            "-q",
            "-p",
            "no:cacheprovider",
        ]
    )
    assert "4 passed" in result.stdout
