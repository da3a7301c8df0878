"""`joobq-sql doctor`: exit 0 when healthy, else 1 with one line saying what is wrong and what to
do, and the report in JSON or as text. (The pinned-xmin case, with a real drain, is in
tests/test_faults.py.)"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy.engine import make_url

from joobq_sql import NewJob, PostgresStore
from joobq_sql.cli.doctor import _advice
from tests.cli_app import assert_one_line_error, run_cli, run_cli_in_process
from tests.fault_app import FaultCountJob
from tests.test_security_roles import data_role


def doctor(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(url, "doctor", *args)


def report_of(result: subprocess.CompletedProcess[str]) -> dict:
    return json.loads(result.stdout)


def test_a_healthy_database_exits_0_and_reports_everything(database_url, pg):
    store = PostgresStore(database_url, pool_size=1)
    try:
        store.enqueue_jobs([NewJob.from_job(FaultCountJob(n=1), queue="doc")])
    finally:
        store.close()
    result = doctor(database_url, "--json")
    assert result.returncode == 0, result.stderr
    report = report_of(result)
    assert report["ok"] is True and report["problems"] == []
    assert report["migrated"] and report["revision"] == report["head"]
    (queue,) = report["queues"]
    assert (queue["queue"], queue["waiting"], queue["running"]) == ("doc", 1, 0)
    assert set(report["jobs_table"]) >= {"live_tuples", "dead_tuples", "vacuums"}
    assert report["workers"]["live_leases"] == 0
    assert report["oldest_transaction"] is None
    # The advice on autovacuum follows the server's settings (and is not a problem).
    settings = report["settings"]
    assert isinstance(settings["autovacuum"], bool)
    assert settings["autovacuum_naptime_s"] > 0
    assert report["advice"] == _advice(settings, report["self_vacuum"])

    text = doctor(database_url)
    assert text.returncode == 0
    for words in ("migrated", "doc", "dead tuples", "oldest transaction: none open", "ok"):
        assert words in text.stdout, text.stdout
    for advice in report["advice"]:
        assert f"advice: {advice}" in text.stdout


def vacuum(*, enabled: bool = True, may_vacuum: bool | None = True, grant: str | None = None):
    """The report's self_vacuum section: the workers' setting and this role's privilege."""
    return {
        "enabled": enabled,
        "covers_jobs_table": bool(enabled and may_vacuum),
        "may_vacuum": may_vacuum,
        "role": "app",
        "owner": "admin",
        "grant": grant,
    }


SLOW = {"autovacuum": True, "autovacuum_naptime_s": 60.0}


def test_advice_on_autovacuum_settings():
    for self_vacuum in (vacuum(), vacuum(enabled=False)):
        assert _advice({"autovacuum": True, "autovacuum_naptime_s": 5.0}, self_vacuum) == []
    (slow,) = _advice(SLOW, vacuum(enabled=False))
    assert "autovacuum_naptime is 60s" in slow and "5-10s" in slow
    (off,) = _advice({"autovacuum": False, "autovacuum_naptime_s": 5.0}, vacuum(enabled=False))
    assert "autovacuum is off" in off


def test_a_long_naptime_needs_no_advice_while_self_vacuum_covers_the_jobs_table():
    assert _advice(SLOW, vacuum()) == []
    (off,) = _advice({"autovacuum": False, "autovacuum_naptime_s": 60.0}, vacuum())
    assert "autovacuum is off" in off and "self-vacuum keeps the jobs table" in off


def test_a_shorter_naptime_is_advised_when_self_vacuum_is_off():
    (slow,) = _advice(SLOW, vacuum(enabled=False))
    assert "self-vacuum is off" in slow and "self_vacuum = true" in slow and "5-10s" in slow


def test_a_shorter_naptime_or_the_privilege_is_advised_when_the_role_may_not_vacuum():
    grant = 'GRANT MAINTAIN ON "joobq".jobs TO "app"'
    (slow,) = _advice(SLOW, vacuum(may_vacuum=False, grant=grant))
    assert "role 'app'" in slow and "may not VACUUM" in slow
    assert grant in slow and "owner, 'admin'" in slow and "5-10s" in slow
    (pg15,) = _advice(SLOW, vacuum(may_vacuum=False, grant=None))  # no MAINTAIN before 17
    assert "GRANT" not in pg15 and "owner, 'admin'" in pg15


def test_the_report_says_whether_self_vacuum_covers_the_jobs_table(database_url, monkeypatch):
    monkeypatch.delenv("JOOBQ_SELF_VACUUM", raising=False)
    monkeypatch.delenv("JOOBQ_CONFIG", raising=False)
    covered = report_of(run_cli_in_process(database_url, "doctor", "--json"))["self_vacuum"]
    assert covered["enabled"] and covered["may_vacuum"] and covered["covers_jobs_table"]
    text = run_cli_in_process(database_url, "doctor").stdout
    assert "self-vacuum: on, and role" in text and "may VACUUM the jobs table" in text

    off = run_cli_in_process(database_url, "doctor", "--json", "--no-self-vacuum")
    assert report_of(off)["self_vacuum"]["covers_jobs_table"] is False
    monkeypatch.setenv("JOOBQ_SELF_VACUUM", "false")  # as a worker started here would read it
    off = report_of(run_cli_in_process(database_url, "doctor", "--json"))["self_vacuum"]
    assert (off["enabled"], off["may_vacuum"], off["covers_jobs_table"]) == (False, True, False)


@pytest.fixture
def data_role_url(database_url: str, pg: psycopg.Connection) -> Iterator[str]:
    """A role with data access to joobq's tables only: it may not VACUUM them."""
    yield from data_role(database_url, pg, "joobq_doc")


def test_a_role_that_may_not_vacuum_is_told_the_grant(data_role_url, monkeypatch):
    monkeypatch.delenv("JOOBQ_SELF_VACUUM", raising=False)
    monkeypatch.delenv("JOOBQ_CONFIG", raising=False)
    report = report_of(run_cli_in_process(data_role_url, "doctor", "--json"))
    vacuum = report["self_vacuum"]
    role = make_url(data_role_url).username
    assert (vacuum["enabled"], vacuum["may_vacuum"], vacuum["covers_jobs_table"]) == (
        True,
        False,
        False,
    )
    assert vacuum["role"] == role
    assert vacuum["grant"] == f'GRANT MAINTAIN ON "joobq".jobs TO "{role}"'  # server 17+
    assert report["advice"] == _advice(report["settings"], vacuum)


def test_an_unmigrated_database_exits_1_saying_to_migrate(fresh_database_url):
    result = doctor(fresh_database_url, "--json")
    assert_one_line_error(result, 'no joobq tables in schema "joobq"', "run: joobq-sql migrate")
    assert report_of(result)["migrated"] is False


def test_expired_leases_nobody_rescues_mean_no_worker_runs(database_url, pg):
    store = PostgresStore(database_url, pool_size=1)
    try:
        (jid,) = store.enqueue_jobs([NewJob.from_job(FaultCountJob(n=1), queue="doc")])
    finally:
        store.close()
    pg.execute(
        "UPDATE joobq.jobs SET status = 'running', attempt = 1, worker_id = 'gone:1:x', "
        "lease_expires_at = now() - interval '2 minutes' WHERE jid = %s",
        (jid,),
    )
    assert doctor(database_url).returncode == 0, "within the default 5 minutes"
    result = doctor(database_url, "--max-stale-lease", "1m")
    assert_one_line_error(result, "1 running jobs' leases expired up to 2m", "start one")


def test_jobs_waiting_with_none_running_unless_the_queue_is_paused(database_url, pg):
    store = PostgresStore(database_url, pool_size=1)
    try:
        store.enqueue_jobs([NewJob.from_job(FaultCountJob(n=1), queue="doc")])
        pg.execute("UPDATE joobq.jobs SET run_at = now() - interval '20 minutes'")
        result = doctor(database_url, "--max-wait", "15m")
        assert_one_line_error(
            result, "queue 'doc': 1 jobs have waited up to 20m", "no live worker runs it"
        )
        store.pause_queue("doc")
        assert doctor(database_url, "--max-wait", "15m").returncode == 0, "paused on purpose"
    finally:
        store.close()


def test_an_old_transaction_is_named_with_its_pid(database_url):
    with psycopg.connect(database_url.replace("+psycopg", "")) as holder:
        holder.execute("SELECT txid_current()")  # holds a transaction id
        pid = holder.info.backend_pid
        result = doctor(database_url, "--json", "--max-transaction-age", "1ms")
        line = assert_one_line_error(result, f"pid {pid}", "pins the xmin horizon")
        assert f"pg_terminate_backend({pid})" in line
        oldest = report_of(result)["oldest_transaction"]
        assert oldest["pid"] == pid and oldest["pins_xmin"] is True


def test_live_workers_are_reported_with_their_queues(make_app, database_url):
    from tests.fault_app import FaultCountJob
    from tests.runtime_support import start

    app = make_app()
    app.queue("doc-live", workers=1, jobs=[FaultCountJob])
    worker = start(app)
    result = doctor(database_url, "--json")
    assert result.returncode == 0, result.stderr
    (live,) = report_of(result)["workers"]["live"]
    assert live["worker_id"] == worker.worker_id and live["queues"] == ["doc-live"]
    assert 0 <= live["last_seen_age"] < 60
    text = doctor(database_url)
    assert "workers: 1 alive" in text.stdout and worker.worker_id in text.stdout
