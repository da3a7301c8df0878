"""GET /joobq/errors/*: error statistics computed from the error history stored in the database,
over a window, through real HTTP."""

from __future__ import annotations

from uuid import UUID

import httpx
import psycopg
import pytest

from joobq_sql import JoobQ
from tests.test_web_support import (
    MAIL,
    REPORTS,
    WebEmail,
    WebReport,
    fail_queue,
)

pytest_plugins = ["tests.test_web_support"]  # its fixtures: web_app, client, serve, ...


@pytest.fixture
def failures(web_app: JoobQ) -> dict[str, list[UUID]]:
    """Three validation errors in MAIL (dead), one timeout in REPORTS (retrying), one
    connection error in REPORTS (dead)."""
    for i in range(3):
        WebEmail.enqueue(to=str(i))
    mail = fail_queue(web_app, MAIL, ValueError("bad address"))
    WebReport.enqueue(name="slow")
    slow = fail_queue(web_app, REPORTS, TimeoutError("too slow"), retry_in=3600)
    WebReport.enqueue(name="offline")
    WebReport.enqueue(name="offline-2")
    web_app.store.claim_jobs(REPORTS, "w", 1)  # still running: it has no error yet
    offline = fail_queue(web_app, REPORTS, ConnectionRefusedError("db down"))
    return {"mail": mail, "slow": slow, "offline": offline}


def test_stats_count_the_errors_by_type_queue_and_job_type(
    client: httpx.Client, failures: dict[str, list[UUID]]
) -> None:
    body = client.get("/joobq/errors/stats").json()
    assert body["total"] == 5
    assert body["by_type"] == {"validation": 3, "timeout": 1, "connection": 1}
    assert body["by_queue"] == {MAIL: 3, REPORTS: 2}
    assert body["by_job_type"] == {"WebEmail": 3, "WebReport": 2}
    assert body["jobs_scanned"] == 5 and body["truncated"] is False
    assert body["window"] == 300 and body["alerting"] is False


def test_by_type_and_by_queue_answer_the_same_counts(
    client: httpx.Client, failures: dict[str, list[UUID]]
) -> None:
    by_type = client.get("/joobq/errors/by-type").json()
    assert by_type["by_type"] == {"validation": 3, "timeout": 1, "connection": 1}
    by_queue = client.get("/joobq/errors/by-queue", params={"window": "1h"}).json()
    assert by_queue["by_queue"] == {MAIL: 3, REPORTS: 2} and by_queue["window"] == 3600


def test_recent_lists_the_newest_errors_first_with_their_details(
    client: httpx.Client, failures: dict[str, list[UUID]]
) -> None:
    body = client.get("/joobq/errors/recent", params={"limit": 2}).json()
    assert body["total"] == 5 and len(body["errors"]) == 2
    newest = body["errors"][0]
    assert newest["jid"] == str(failures["offline"][0])
    assert newest["error_class"] == "ConnectionRefusedError" and newest["message"] == "db down"
    assert newest["job_status"] == "dead" and newest["queue"] == REPORTS
    assert "Traceback" in newest["backtrace"]
    assert body["errors"][0]["failed_at"] >= body["errors"][1]["failed_at"]


def test_errors_older_than_the_window_are_left_out(
    client: httpx.Client, web_app: JoobQ, pg: psycopg.Connection, failures: dict[str, list[UUID]]
) -> None:
    old = failures["mail"][0]
    pg.execute(
        "UPDATE joobq.jobs SET errors = jsonb_set(errors, '{0,failed_at}', "
        "to_jsonb((now() - interval '2 hours')::text)) WHERE jid = %s",
        (old,),
    )
    recent = client.get("/joobq/errors/stats", params={"window": "1h"}).json()
    assert recent["by_type"]["validation"] == 2
    wide = client.get("/joobq/errors/stats", params={"window": 3 * 3600}).json()
    assert wide["by_type"]["validation"] == 3


def test_an_error_entry_without_a_time_counts_at_the_jobs_last_change(
    client: httpx.Client, web_app: JoobQ, pg: psycopg.Connection
) -> None:
    jid = WebEmail.enqueue(to="a")
    fail_queue(web_app, MAIL)
    pg.execute(
        "UPDATE joobq.jobs SET errors = jsonb_build_array((errors->0) - 'failed_at'::text) "
        "WHERE jid = %s",
        (jid,),
    )
    (entry,) = client.get("/joobq/errors/recent").json()["errors"]
    record = web_app.store.get_job(jid)
    assert record is not None and entry["failed_at"] == record.updated_at.isoformat()


@pytest.mark.parametrize("window", ["abc", "0", "-5", "31d", "1y"])
def test_a_bad_window_is_422_naming_it(shared_client: httpx.Client, window: str) -> None:
    for path in ("stats", "recent", "by-type", "by-queue"):
        response = shared_client.get(f"/joobq/errors/{path}", params={"window": window})
        assert response.status_code == 422
        assert response.json()["field"] == "window" and repr(window) in response.json()["error"]


def test_a_bad_recent_limit_is_422(shared_client: httpx.Client) -> None:
    response = shared_client.get("/joobq/errors/recent", params={"limit": "501"})
    assert response.status_code == 422 and response.json()["field"] == "limit"
