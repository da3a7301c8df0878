"""The command line as a subprocess: global options, exit codes, one-line errors, migrate,
enqueue and stats. Each test has a database of its own (the `database_url` fixture)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from joobq_sql import NewJob
from tests.cli_app import (
    REPO_ROOT,
    assert_one_line_error,
    assert_usage_error,
    cli_env,
    run_cli,
)
from tests.helpers import wait_until

UNREACHABLE = "postgresql://postgres@127.0.0.1:1/x"


def jobs_in(pg: psycopg.Connection, queue: str) -> int:
    return pg.execute("SELECT count(*) FROM joobq.jobs WHERE queue = %s", (queue,)).fetchone()[0]


# -- global behaviour ---------------------------------------------------------------------------


def test_help_lists_every_command_and_python_m_is_the_same_program() -> None:
    result = run_cli(None, "--help")
    assert result.returncode == 0
    for name in (
        "migrate",
        "worker",
        "enqueue",
        "stats",
        "jobs",
        "dead",
        "prune",
        "queues",
        "db",
        "demo",
    ):
        assert f"  {name}" in result.stdout
    version = run_cli(None, "--version")
    assert version.returncode == 0 and "joobq-sql" in version.stdout
    script = Path(sys.executable).with_name("joobq-sql")  # the console script of the install
    if script.exists():
        installed = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=60)
        assert installed.returncode == 0 and installed.stdout == result.stdout


def test_an_unknown_option_is_bad_usage() -> None:
    result = run_cli(UNREACHABLE, "stats", "--no-such-option")
    assert_usage_error(result, "No such option", "joobq-sql stats --help")


def test_an_invalid_schema_name_is_bad_usage() -> None:
    assert run_cli(UNREACHABLE, "--schema", "Bad-Name", "stats").returncode == 2


def test_an_unreachable_database_is_one_line_that_names_the_server() -> None:
    result = run_cli(UNREACHABLE, "stats")
    assert_one_line_error(
        result,
        "cannot connect to PostgreSQL at 127.0.0.1:1",
        "connection refused",
        "JOOBQ_DATABASE_URL",
    )


def test_the_option_wins_over_the_environment_and_passwords_are_never_printed() -> None:
    url = "postgresql://app:s3cret-pw@127.0.0.1:1/x"
    result = run_cli("postgresql://ignored@127.0.0.1:2/y", "--database-url", url, "jobs", "list")
    line = assert_one_line_error(result, "127.0.0.1:1", "--database-url")
    assert "s3cret-pw" not in result.stderr + result.stdout
    assert "127.0.0.1:2" not in line


# A wrong password against a real scram-sha-256 server: tests/test_hostile_input.py.


def test_an_unmigrated_database_says_to_run_migrate(fresh_database_url: str) -> None:
    for command in (["stats"], ["jobs", "list"], ["enqueue", "Anything"]):
        result = run_cli(fresh_database_url, *command)
        assert_one_line_error(result, "not migrated", "run: joobq-sql migrate")


def test_a_missing_database_says_to_create_it(admin_url: str) -> None:
    missing = make_url(admin_url).set(database="joobq_no_such_db")
    result = run_cli(missing.render_as_string(hide_password=False), "stats")
    assert_one_line_error(result, 'database "joobq_no_such_db" does not exist', "createdb")


# -- migrate ------------------------------------------------------------------------------------


def test_migrate_upgrades_reports_and_downgrades(fresh_database_url: str) -> None:
    url = fresh_database_url
    current = run_cli(url, "--json", "migrate", "current")
    assert current.returncode == 0, current.stderr
    state = json.loads(current.stdout)
    assert state["current"] is None and state["up_to_date"] is False
    head = state["head"]

    upgraded = run_cli(url, "migrate")  # upgrade is the default
    assert upgraded.returncode == 0, upgraded.stderr
    assert f"from base to {head}" in upgraded.stdout

    history = json.loads(run_cli(url, "migrate", "history", "--json").stdout)
    revisions = [entry["revision"] for entry in history]
    assert revisions[-1] == head and history[-1]["head"] is True

    down = run_cli(url, "--json", "migrate", "downgrade")  # one revision back by default
    assert down.returncode == 0, down.stderr
    assert json.loads(down.stdout) == {"schema": "joobq", "from": head, "to": revisions[-2]}
    assert_one_line_error(run_cli(url, "stats"), "not migrated", f"needs {head}")

    assert run_cli(url, "migrate", "downgrade", "base").returncode == 2, "asks for --yes"
    assert run_cli(url, "migrate", "upgrade", "no-such-revision").returncode == 2
    assert run_cli(url, "migrate", "upgrade").returncode == 0
    assert "already at revision" in run_cli(url, "migrate").stdout
    assert json.loads(run_cli(url, "migrate", "current", "--json").stdout)["up_to_date"] is True


def test_migrate_sql_prints_the_script_without_a_database(tmp_path: Path) -> None:
    env = cli_env(None, JOOBQ_EMBEDDED_DIR=str(tmp_path / "never-started"))
    full = run_cli(None, "migrate", "sql", env=env)
    assert full.returncode == 0, full.stderr
    assert "CREATE TABLE joobq.jobs" in full.stdout and full.stdout.rstrip().endswith("COMMIT;")
    step = run_cli(None, "--schema", "ops_jobs", "migrate", "sql", "--from", "0001", env=env)
    assert step.returncode == 0, step.stderr
    assert "Running upgrade 0001 -> 0002" in step.stdout
    assert "Running upgrade  -> 0001" not in step.stdout
    assert "ops_jobs." in step.stdout
    assert "embedded" not in full.stderr + step.stderr
    assert not (tmp_path / "never-started").exists()


# -- enqueue ------------------------------------------------------------------------------------


def test_enqueue_prints_the_jid_of_the_stored_job(database_url: str) -> None:
    result = run_cli(
        database_url,
        "enqueue",
        "SendReport",
        "--args",
        '{"to": "ops@example.com"}',
        "--queue",
        "reports",
        "--priority",
        "5",
        "--delay",
        "30s",
    )
    assert result.returncode == 0, result.stderr
    jid = result.stdout.strip()
    shown = json.loads(run_cli(database_url, "--json", "jobs", "show", jid).stdout)
    assert shown["jid"] == jid
    assert (shown["job_type"], shown["queue"], shown["status"]) == (
        "SendReport",
        "reports",
        "scheduled",
    )
    assert shown["args"] == {"to": "ops@example.com"}
    assert shown["priority"] == 5


def test_enqueue_at_a_time_with_a_zone_and_json_output(database_url: str) -> None:
    result = run_cli(database_url, "--json", "enqueue", "Ping", "--at", "2030-01-31T09:00:00Z")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["status"] == "scheduled" and document["queue"] == "default"
    shown = json.loads(run_cli(database_url, "jobs", "show", document["jid"], "--json").stdout)
    assert shown["run_at"].startswith("2030-01-31T09:00:00")


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--args", '{"to": '], "not valid JSON"),
        (["--args", "[1, 2]"], "must be a JSON object"),
        (["--at", "2030-01-31T09:00:00"], "'2030-01-31T09:00:00' has no time zone"),
        (["--delay", "soon"], "delay"),
        (["--delay", "5", "--at", "2030-01-31T09:00:00Z"], "not both"),
        (["--queue", ""], "queue name must not be empty"),
    ],
    ids=["bad-json", "not-an-object", "naive-time", "bad-delay", "delay-and-at", "empty-queue"],
)
def test_enqueue_refuses_bad_arguments_as_bad_usage(database_url, arguments, message) -> None:
    result = run_cli(database_url, "enqueue", "Ping", *arguments)
    assert_usage_error(result, message)


def test_enqueue_with_app_validates_args_with_the_job_class(database_url, pg) -> None:
    bad = run_cli(
        database_url, "enqueue", "CliTypedJob", "--app", "tests.cli_app:app", "--args", '{"to": 5}'
    )
    assert bad.returncode == 2 and "to" in bad.stderr, bad.stderr
    unknown = run_cli(database_url, "enqueue", "NoSuchJob", "--app", "tests.cli_app:app")
    assert unknown.returncode == 2 and "NoSuchJob" in unknown.stderr
    good = run_cli(
        database_url,
        "--json",
        "enqueue",
        "CliTypedJob",
        "--app",
        "tests.cli_app:app",
        "--args",
        '{"to": "a@example.com"}',
    )
    assert good.returncode == 0, good.stderr
    assert json.loads(good.stdout)["queue"] == "cli", "the class's queue"
    assert jobs_in(pg, "cli") == 1


def test_enqueue_file_writes_batches_and_stops_at_a_bad_line(database_url, pg, tmp_path) -> None:
    good = tmp_path / "jobs.jsonl"
    good.write_text("".join(f'{{"n": {n}}}\n' for n in range(2500)))
    result = run_cli(database_url, "enqueue", "CliCountJob", "--queue", "bulk", "--file", str(good))
    assert result.returncode == 0, result.stderr
    assert "enqueued 2500 CliCountJob jobs" in result.stdout
    assert jobs_in(pg, "bulk") == 2500

    bad = tmp_path / "bad.jsonl"
    lines = [f'{{"n": {n}}}' for n in range(2500)]
    lines[2199] = '{"n": '  # line 2200, in the third batch of 1000
    bad.write_text("\n".join(lines) + "\n")
    failed = run_cli(
        database_url, "enqueue", "CliCountJob", "--queue", "bulk-bad", "--file", str(bad)
    )
    assert_one_line_error(failed, "line 2200", "2000 jobs before it were")
    assert jobs_in(pg, "bulk-bad") == 2000, "two whole batches, nothing of the third"


# -- stats --------------------------------------------------------------------------------------


def test_stats_prints_a_table_and_json(database_url: str, pg_store) -> None:
    for queue in ("mail", "mail", "reports"):
        pg_store.enqueue_jobs([NewJob(jid=uuid.uuid4(), queue=queue, job_type="Ping", args={})])
    table = run_cli(database_url, "stats")
    assert table.returncode == 0, table.stderr
    assert "mail" in table.stdout and "oldest waiting" in table.stdout
    for arguments in (["--json", "stats"], ["stats", "--json"]):
        document = json.loads(run_cli(database_url, *arguments).stdout)
        by_queue = {q["queue"]: q for q in document["queues"]}
        assert by_queue["mail"]["waiting"] == 2 and by_queue["reports"]["waiting"] == 1
        assert set(by_queue["mail"]["totals"]) == {
            "completed",
            "retried",
            "dead",
            "expired",
            "rescued",
        }


def test_stats_watch_refreshes_until_ctrl_c(database_url: str, tmp_path: Path) -> None:
    assert run_cli(database_url, "enqueue", "Ping", "--queue", "watched").returncode == 0
    out = tmp_path / "watch.out"
    with out.open("w") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "joobq_sql", "--json", "stats", "--watch", "--interval", "0.2"],
            cwd=REPO_ROOT,
            env=cli_env(database_url),
            stdout=sink,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            wait_until(
                lambda: out.read_text().count("watched") >= 2, timeout=20, what="two refreshes"
            )
            proc.send_signal(signal.SIGINT)
            assert proc.wait(10) == 0, proc.stderr.read() if proc.stderr else ""
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    snapshots = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
    assert len(snapshots) >= 2
    assert snapshots[0]["queues"][0]["queue"] == "watched"
