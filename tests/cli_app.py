"""The JoobQ application the CLI tests run with `joobq-sql worker --app tests.cli_app:app`,
and a helper that runs the CLI as a subprocess.

`joobq-sql worker` reads the module attribute `app`, as it would read a user's module. It is
built on first access (the module's __getattr__), so that the tests, which import the helpers
below, create no JoobQ application in the pytest process. Its job logs each run to the test's
`cli_perform_log` table (pid, jid, attempt) on a connection of its own, so that a test can
count side effects across processes.
Class names start with "Cli": job types are registered by class name.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy.engine import make_url

from joobq_sql import Job, JoobQ

REPO_ROOT = Path(__file__).resolve().parent.parent
QUEUE = "cli"


def libpq_dsn() -> str:
    url = os.environ["JOOBQ_DATABASE_URL"]
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class CliCountJob(Job):
    """Logs (pid, jid, attempt) and sleeps a little, so that work spreads over processes."""

    queue = QUEUE
    n: int
    seconds: float = 0.02

    def perform(self) -> None:
        time.sleep(self.seconds)
        with psycopg.connect(libpq_dsn(), autocommit=True) as conn:
            conn.execute(
                "INSERT INTO cli_perform_log (pid, jid, attempt) VALUES (%s, %s, %s)",
                (os.getpid(), self.jid, self.attempt),
            )


class CliTypedJob(Job):
    """A job with typed args, for `enqueue --app` validation."""

    queue = QUEUE
    to: str
    count: int = 1

    def perform(self) -> None:
        pass


_app: JoobQ | None = None


def __getattr__(name: str) -> Any:
    global _app
    if name != "app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if _app is None:
        _app = JoobQ(
            lease=2,
            heartbeat_interval=0.5,
            maintenance_interval=0.5,
            poll_interval=0.2,
            shutdown_grace=10,
        )
        _app.queue(QUEUE, workers=2, jobs=[CliCountJob, CliTypedJob])
        _app.queue("cli-other", workers=1, jobs=[])
    return _app


def cli_env(database_url: str | None, **extra: str) -> dict[str, str]:
    """The environment for a CLI subprocess: no inherited JOOBQ_* or DATABASE_URL, then
    JOOBQ_DATABASE_URL=`database_url` (unless None) and `extra`."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("JOOBQ_") and name != "DATABASE_URL"
    }
    if database_url is not None:
        env["JOOBQ_DATABASE_URL"] = database_url
    env.update(extra)
    return env


def run_cli(
    database_url: str | None, *args: str, timeout: float = 60, **kwargs: Any
) -> subprocess.CompletedProcess[str]:
    """Run `python -m joobq_sql *args` from the repository root; capture its output."""
    env = kwargs.pop("env", None) or cli_env(database_url)
    return subprocess.run(
        [sys.executable, "-m", "joobq_sql", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        **kwargs,
    )


def run_cli_in_process(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """The same command line, run in this process: no interpreter start-up (about a second on
    a busy machine). For tables of cases one subprocess run of which shows the real thing."""
    from joobq_sql.cli import main

    out, err = io.StringIO(), io.StringIO()
    code: int = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(["--database-url", database_url, *args])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    return subprocess.CompletedProcess(["joobq-sql", *args], code, out.getvalue(), err.getvalue())


def assert_one_line_error(result: subprocess.CompletedProcess[str], *expected: str) -> str:
    """Exit 1, one `error:` line on stderr containing each of `expected`, no traceback."""
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if not line.startswith("using the")]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines
    for text in expected:
        assert text in lines[0], lines[0]
    return lines[0]


def assert_usage_error(result: subprocess.CompletedProcess[str], *expected: str) -> str:
    """Exit 2, and one `error:` line on stderr containing each of `expected`."""
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for text in expected:
        assert text in lines[0], lines[0]
    return lines[0]
