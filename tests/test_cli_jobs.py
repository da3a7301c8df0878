"""`jobs`, `dead`, `prune` and `queues` as subprocesses; jobs are set up through the store."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest

from joobq_sql import Failure, NewJob, PostgresStore
from tests.cli_app import run_cli


def enqueue(store: PostgresStore, queue: str, n: int = 1, **options) -> list[UUID]:
    jobs = [
        NewJob(jid=uuid.uuid4(), queue=queue, job_type="CliThing", args={"n": i}, **options)
        for i in range(n)
    ]
    return store.enqueue_jobs(jobs)


def make_dead(store: PostgresStore, queue: str, n: int = 1) -> list[UUID]:
    """n jobs that ran once, failed and are out of retries."""
    enqueue(store, queue, n, max_retries=0)
    claimed = store.claim_jobs(queue, "cli-test-worker", n)
    store.fail_jobs(
        [Failure(r.jid, r.attempt, r.worker_id, {"message": "boom"}, retry_in=1) for r in claimed]
    )
    return [r.jid for r in claimed]


def status(store: PostgresStore, jid: UUID) -> str | None:
    record = store.get_job(jid)
    return None if record is None else record.status.value


def cli_json(database_url: str, *args: str):
    result = run_cli(database_url, "--json", *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_jobs_list_filters_by_queue_status_and_type(database_url, pg_store) -> None:
    enqueue(pg_store, "a", 3)
    (dead,) = make_dead(pg_store, "b")
    listed = cli_json(database_url, "jobs", "list", "--queue", "a", "--limit", "2")
    assert [j["queue"] for j in listed] == ["a", "a"]
    dead_only = cli_json(database_url, "jobs", "list", "--status", "dead", "--type", "CliThing")
    assert [j["jid"] for j in dead_only] == [str(dead)]
    table = run_cli(database_url, "jobs", "list", "--offset", "1")
    assert table.returncode == 0 and "CliThing" in table.stdout
    assert run_cli(database_url, "jobs", "list", "--status", "lost").returncode == 2


def test_jobs_show_prints_a_job_and_fails_for_an_unknown_one(database_url, pg_store) -> None:
    (jid,) = make_dead(pg_store, "q")
    shown = run_cli(database_url, "jobs", "show", str(jid))
    assert shown.returncode == 0, shown.stderr
    assert "retries exhausted" in shown.stdout and "boom" in shown.stdout
    unknown = run_cli(database_url, "jobs", "show", str(uuid.uuid4()))
    assert unknown.returncode == 1 and unknown.stderr.startswith("error: no job with jid")
    assert run_cli(database_url, "jobs", "show", "not-a-uuid").returncode == 2


def test_jobs_retry_redrives_a_dead_job_and_reports_the_rest(database_url, pg_store) -> None:
    (dead,) = make_dead(pg_store, "q")
    missing = uuid.uuid4()
    result = run_cli(database_url, "jobs", "retry", str(dead), str(missing))
    assert result.returncode == 1, "one of the two could not be retried"
    assert f"{dead} retried" in result.stdout
    assert f"job {missing} not retried: no such job" in result.stderr
    assert status(pg_store, dead) == "enqueued"


def test_jobs_cancel_waiting_and_running_jobs(database_url, pg_store) -> None:
    running, waiting = enqueue(pg_store, "q", 2)
    pg_store.claim_jobs("q", "cli-test-worker", 1)  # the first enqueued is now running
    outcome = cli_json(database_url, "jobs", "cancel", str(waiting), str(running))
    assert outcome == {str(waiting): "cancelled", str(running): "requested"}
    record = pg_store.get_job(waiting)
    assert (record.status.value, record.dead_reason) == ("dead", "cancelled")
    again = run_cli(database_url, "jobs", "cancel", str(waiting))
    assert again.returncode == 1 and "it is dead" in again.stderr


def test_jobs_delete_exits_1_when_a_job_did_not_exist(database_url, pg_store) -> None:
    (jid,) = enqueue(pg_store, "q")
    result = run_cli(database_url, "jobs", "delete", str(jid), str(uuid.uuid4()))
    assert result.returncode == 1
    assert "deleted 1 of 2 jobs" in result.stdout
    assert status(pg_store, jid) is None


def test_dead_list_and_retry_by_jid_and_all(database_url, pg_store) -> None:
    dead_a = make_dead(pg_store, "a", 2)
    dead_b = make_dead(pg_store, "b", 3)
    listed = cli_json(database_url, "dead", "list", "--queue", "a")
    assert sorted(j["jid"] for j in listed) == sorted(map(str, dead_a))
    assert all(j["dead_reason"] == "retries exhausted" for j in listed)
    assert cli_json(database_url, "dead", "retry", str(dead_a[0])) == {"retried": 1}
    assert cli_json(database_url, "dead", "retry", "--all", "--queue", "b") == {"retried": 3}
    assert {status(pg_store, jid) for jid in dead_b} == {"enqueued"}
    assert status(pg_store, dead_a[1]) == "dead", "--queue b left queue a alone"
    assert run_cli(database_url, "dead", "retry").returncode == 2, "jids or --all"
    assert run_cli(database_url, "dead", "retry", "--queue", "a").returncode == 2


def test_dead_purge_asks_first_and_deletes_dead_jobs(database_url, pg_store) -> None:
    dead = make_dead(pg_store, "a", 2) + make_dead(pg_store, "b", 1)
    (alive,) = enqueue(pg_store, "a")
    refused = run_cli(database_url, "dead", "purge")  # no terminal to answer the question
    assert refused.returncode == 1
    assert {status(pg_store, jid) for jid in dead} == {"dead"}
    assert cli_json(database_url, "dead", "purge", "--expired-only") == {"purged": 0}
    assert cli_json(database_url, "dead", "purge", "--queue", "a", "--yes") == {"purged": 2}
    assert status(pg_store, dead[2]) == "dead" and status(pg_store, alive) == "enqueued"
    result = run_cli(database_url, "dead", "purge", "--yes")
    assert result.returncode == 0 and "purged 1 dead jobs" in result.stdout


def test_prune_expires_waiting_jobs_and_prints_counts(database_url, pg_store) -> None:
    past = datetime.now(UTC) - timedelta(minutes=1)
    (expired,) = enqueue(pg_store, "q", expires_at=past)
    (fresh,) = enqueue(pg_store, "q")
    counts = cli_json(database_url, "prune")
    assert counts == {"expired": 1, "dead_purged": 0, "completed_pruned": 0}
    record = pg_store.get_job(expired)
    assert (record.status.value, record.dead_reason) == ("dead", "expired")
    assert status(pg_store, fresh) == "enqueued"
    text = run_cli(database_url, "prune")
    assert text.returncode == 0 and "expired 0 waiting jobs" in text.stdout


def test_queues_pause_resume_and_list(database_url, pg_store) -> None:
    enqueue(pg_store, "mail", 2)
    assert cli_json(database_url, "queues", "pause", "mail")["changed"] is True
    again = run_cli(database_url, "queues", "pause", "mail")
    assert again.returncode == 0 and "already paused" in again.stdout
    assert pg_store.paused_queues() == {"mail"}
    listed = {q["queue"]: q for q in cli_json(database_url, "queues", "list")}
    assert listed["mail"]["paused"] is True and listed["mail"]["waiting"] == 2
    resumed = run_cli(database_url, "queues", "resume", "mail")
    assert resumed.returncode == 0 and "queue mail resumed" in resumed.stdout
    assert pg_store.paused_queues() == set()


@pytest.mark.parametrize("command", [["jobs", "retry"], ["jobs", "cancel"], ["jobs", "delete"]])
def test_actions_need_at_least_one_jid(database_url, command) -> None:
    assert run_cli(database_url, *command).returncode == 2
