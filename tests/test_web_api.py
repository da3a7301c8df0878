"""The REST API under /joobq through real HTTP, against real PostgreSQL: enqueue with JoobQ's
validation rules and status codes, jobs, queues, schedules, health and errors."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any
from uuid import UUID

import httpx
import pytest

from joobq_sql import JobStatus, JoobQ, PostgresStore
from joobq_sql.job import job_class
from joobq_sql.web.api import ENDPOINTS
from tests.test_web_support import (
    MAIL,
    REPORTS,
    WebEmail,
    WebReport,
    fail_queue,
    job_count,
    status_of,
)

pytest_plugins = ["tests.test_web_support"]  # its fixtures: web_app, client, serve, ...


def enqueue(client: httpx.Client, **body: Any) -> httpx.Response:
    return client.post("/joobq/jobs", json=body)


# -- POST /joobq/jobs ---------------------------------------------------------------------------


def test_enqueue_answers_201_and_stores_the_job_with_its_class_defaults(
    client: httpx.Client, web_app: JoobQ
) -> None:
    response = enqueue(client, job_type="WebEmail", data={"to": "a@example.com"})
    assert response.status_code == 201, response.text
    body = response.json()
    record = web_app.store.get_job(UUID(body["jid"]))
    assert record is not None
    assert (record.queue, record.job_type, record.status) == (MAIL, "WebEmail", JobStatus.ENQUEUED)
    assert record.args == {"to": "a@example.com", "subject": "hello", "copies": 1}
    assert body["validated"] is True and body["status"] == "enqueued"
    assert response.headers["location"] == f"/joobq/jobs/{body['jid']}"


def test_enqueued_args_reach_the_job_fields(client: httpx.Client, web_app: JoobQ) -> None:
    data = {
        "name": "weekly",
        "when": "2026-03-01T09:00:00+01:00",
        "colour": "blue",
        "tags": ["a", "b"],
        "address": {"street": "Main St", "zip_code": 12345},
        "weights": {"x": 1.5},
    }
    jid = enqueue(client, job_type="WebReport", args=data).json()["jid"]
    (record,) = web_app.store.claim_jobs(REPORTS, "w", 1)
    job = job_class(record.job_type).from_args(record.args, jid=record.jid)
    assert isinstance(job, WebReport) and str(job.jid) == jid
    assert job.name == "weekly" and job.colour.value == "blue" and job.tags == ["a", "b"]
    assert job.when is not None and job.when.utcoffset() == timedelta(hours=1)
    assert job.address is not None and job.address.zip_code == 12345


def test_delay_makes_the_job_scheduled_that_many_seconds_after_its_insert(
    client: httpx.Client, web_app: JoobQ
) -> None:
    body = enqueue(client, job_type="WebEmail", data={"to": "x"}, delay=120.5).json()
    record = web_app.store.get_job(UUID(body["jid"]))
    assert record is not None and record.status is JobStatus.SCHEDULED
    assert body["status"] == "scheduled"
    assert (record.run_at - record.created_at).total_seconds() == pytest.approx(120.5, abs=0.01)
    assert web_app.store.claim_jobs(MAIL, "w", 10) == []


def test_priority_is_stored_and_decides_the_claim_order(
    client: httpx.Client, web_app: JoobQ
) -> None:
    low = enqueue(client, job_type="WebEmail", data={"to": "low"}, priority=1).json()["jid"]
    high = enqueue(client, job_type="WebEmail", data={"to": "high"}, priority=90).json()["jid"]
    claimed = web_app.store.claim_jobs(MAIL, "w", 2)
    assert [str(r.jid) for r in claimed] == [high, low]
    assert [r.priority for r in claimed] == [90, 1]


def test_queue_and_retries_override_the_class(client: httpx.Client, web_app: JoobQ) -> None:
    body = enqueue(client, job_type="WebEmail", data={"to": "x"}, queue="other_1", retries=7)
    record = web_app.store.get_job(UUID(body.json()["jid"]))
    assert record is not None and (record.queue, record.max_retries) == ("other_1", 7)


def test_a_job_type_no_class_registers_is_stored_as_given(
    client: httpx.Client, web_app: JoobQ
) -> None:
    response = enqueue(client, job_type="ElsewhereJob", data={"anything": [1, {"a": None}]})
    assert response.status_code == 201
    assert response.json()["validated"] is False
    record = web_app.store.get_job(UUID(response.json()["jid"]))
    assert record is not None and record.queue == web_app.settings.default_queue
    assert record.args == {"anything": [1, {"a": None}]}
    assert record.max_retries == web_app.settings.retries


@pytest.mark.parametrize(
    ("content", "headers", "fragment"),
    [
        (b'{"job_type": "WebEmail"}', {"content-type": "text/plain"}, "Content-Type"),
        (b'{"job_type": "WebEmail"}', {}, "Content-Type"),
        (b'{"job_type": "WebEmail",', {"content-type": "application/json"}, "not valid JSON"),
        (b'{"job_type": "WebEmail", "delay": NaN}', {"content-type": "application/json"}, "NaN"),
        (b'[{"job_type": "WebEmail"}]', {"content-type": "application/json"}, "an array"),
        (b'"WebEmail"', {"content-type": "application/json"}, "a string"),
        (b"\xff\xfe", {"content-type": "application/json"}, "not valid JSON"),
    ],
)
def test_a_body_that_is_not_a_json_object_is_400_and_stores_nothing(
    shared_client: httpx.Client,
    shared_app: JoobQ,
    content: bytes,
    headers: dict[str, str],
    fragment: str,
) -> None:
    response = shared_client.post("/joobq/jobs", content=content, headers=headers)
    assert response.status_code == 400
    assert fragment in response.json()["error"]
    assert job_count(shared_app) == 0


def test_a_body_over_one_mebibyte_is_413(client: httpx.Client, web_app: JoobQ) -> None:
    big = {"job_type": "ElsewhereJob", "data": {"blob": "x" * (1024 * 1024)}}
    assert enqueue(client, **big).status_code == 413
    assert job_count(web_app) == 0


BAD_FIELDS = [
    ({"queue": "has space"}, "queue", "has space"),
    ({"queue": "q" * 51}, "queue", "1..50"),
    ({"queue": "dots.are.out"}, "queue", "^[a-zA-Z0-9_-]+$"),
    ({"queue": 7}, "queue", "7"),
    ({"queue": ""}, "queue", '""'),
    ({"priority": -1}, "priority", "0..100"),
    ({"priority": 101}, "priority", "101"),
    ({"priority": "5"}, "priority", '"5"'),
    ({"priority": True}, "priority", "true"),
    ({"priority": 2.5}, "priority", "2.5"),
    ({"delay": -1}, "delay", "0..86400"),
    ({"delay": 86400.5}, "delay", "86400.5"),
    ({"delay": "10"}, "delay", '"10"'),
    ({"delay": False}, "delay", "false"),
    ({"retries": 11}, "retries", "0..10"),
    ({"retries": -1}, "retries", "-1"),
    ({"retries": 1.5}, "retries", "1.5"),
    ({"job_type": None}, "job_type", "required"),
    ({"job_type": ""}, "job_type", "non-empty"),
    ({"job_type": 12}, "job_type", "12"),
    ({"job_type": "x" * 201}, "job_type", "200"),
    ({"data": [1, 2]}, "data", "an array"),
    ({"data": "to=a"}, "data", "a string"),
    ({"args": None}, "data", "null"),
    ({"colour": "red"}, "colour", "valid fields are"),
    ({"args": {"to": "b"}, "data": {"to": "a"}}, "args", "not both"),
]


@pytest.mark.parametrize(("change", "field", "fragment"), BAD_FIELDS)
def test_a_bad_field_is_422_naming_it_and_stores_nothing(
    shared_client: httpx.Client,
    shared_app: JoobQ,
    change: dict[str, Any],
    field: str,
    fragment: str,
) -> None:
    body: dict[str, Any] = {"job_type": "WebEmail", **change}
    if "args" not in change:
        body.setdefault("data", {"to": "a"})
    body = {k: v for k, v in body.items() if not (k == "job_type" and v is None)}
    response = enqueue(shared_client, **body)
    assert response.status_code == 422, response.text
    answer = response.json()
    assert answer["field"] == field
    assert fragment in answer["error"]
    assert job_count(shared_app) == 0


def test_every_bad_field_is_listed_at_once(shared_client: httpx.Client) -> None:
    response = enqueue(shared_client, job_type="WebEmail", priority=500, delay=-5, retries=99)
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["priority", "retries", "delay"]


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({}, "'to'"),
        ({"to": 5}, "to: expected str"),
        ({"to": "a", "bcc": "b"}, "['bcc']"),
        ({"to": "a", "copies": "three"}, "copies: expected int"),
    ],
)
def test_data_that_does_not_fit_the_registered_class_is_422_naming_the_field(
    shared_client: httpx.Client, shared_app: JoobQ, data: dict[str, Any], fragment: str
) -> None:
    response = enqueue(shared_client, job_type="WebEmail", data=data)
    assert response.status_code == 422
    assert response.json()["field"] == "data"
    assert "WebEmail" in response.json()["error"] and fragment in response.json()["error"]
    assert job_count(shared_app) == 0


def test_a_naive_datetime_for_a_datetime_field_is_422(shared_client: httpx.Client) -> None:
    response = enqueue(
        shared_client, job_type="WebReport", data={"name": "n", "when": "2026-01-01T00:00"}
    )
    assert response.status_code == 422 and "when" in response.json()["error"]


def test_a_unique_duplicate_returns_the_waiting_jobs_jid_with_200(client: httpx.Client) -> None:
    first = enqueue(client, job_type="WebUnique", data={"key": "k1"})
    second = enqueue(client, job_type="WebUnique", data={"key": "k1"})
    assert (first.status_code, second.status_code) == (201, 200)
    assert second.json()["jid"] == first.json()["jid"]
    assert second.json()["status"] == "duplicate"


def test_a_unique_duplicate_of_a_raising_class_is_409(client: httpx.Client) -> None:
    assert enqueue(client, job_type="WebUniqueStrict", data={"key": "k"}).status_code == 201
    response = enqueue(client, job_type="WebUniqueStrict", data={"key": "k"})
    assert response.status_code == 409


# -- registry -----------------------------------------------------------------------------------


def test_the_registry_gives_each_job_types_json_schema(shared_client: httpx.Client) -> None:
    response = shared_client.get("/joobq/jobs/registry")
    assert response.status_code == 200
    entries = {e["job_type"]: e for e in response.json()["job_types"]}
    email = entries["WebEmail"]
    assert (email["queue"], email["retries"], email["priority"]) == (MAIL, 3, 0)
    schema = email["schema"]
    assert schema["required"] == ["to"]
    assert schema["additionalProperties"] is False
    assert schema["description"] == "Sends one email."
    assert schema["properties"]["to"] == {"type": "string"}
    assert schema["properties"]["copies"] == {"type": "integer", "default": 1}
    report = entries["WebReport"]["schema"]["properties"]
    assert report["when"] == {
        "anyOf": [{"type": "string", "format": "date-time"}, {"type": "null"}],
        "default": None,
    }
    assert report["colour"] == {"enum": ["red", "blue"], "title": "WebColour", "default": "red"}
    assert report["tags"]["anyOf"][0] == {"type": "array", "items": {"type": "string"}}
    address = report["address"]["anyOf"][0]
    assert address["properties"]["zip_code"]["anyOf"] == [{"type": "integer"}, {"type": "null"}]
    assert address["required"] == ["street"]
    weights = report["weights"]["anyOf"][0]
    assert weights == {"type": "object", "additionalProperties": {"type": "number"}}


# -- health -------------------------------------------------------------------------------------


def test_health_asks_the_database_for_its_clock(client: httpx.Client, web_app: JoobQ) -> None:
    response = client.get("/joobq/health/check")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    from datetime import datetime

    answered = datetime.fromisoformat(body["database_time"])
    assert abs((web_app.store.now() - answered).total_seconds()) < 5


def test_health_is_503_when_the_database_cannot_be_reached(
    make_app: Callable[..., JoobQ], serve: Callable[..., httpx.Client]
) -> None:
    store = PostgresStore("postgresql+psycopg://joobq:secret@127.0.0.1:1/nowhere")
    client = serve(make_app(store=store))
    response = client.get("/joobq/health/check")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable" and "OperationalError" in body["error"]
    assert "secret" not in response.text


# -- jobs ---------------------------------------------------------------------------------------


def test_a_job_is_shown_with_its_error_history(client: httpx.Client, web_app: JoobQ) -> None:
    jid = WebReport.enqueue(name="r")
    fail_queue(web_app, REPORTS, retry_in=0)
    web_app.store.retry_jobs([jid])
    fail_queue(web_app, REPORTS, TimeoutError("too slow"))
    body = client.get(f"/joobq/jobs/{jid}").json()
    assert body["status"] == "dead" and body["attempt"] == 2
    assert [e["error_type"] for e in body["errors"]] == ["validation", "timeout"]
    assert "Traceback" in body["errors"][1]["backtrace"]
    assert body["error"]["message"] == "too slow"


@pytest.mark.parametrize(
    "path", ["/joobq/jobs/{}", "/joobq/jobs/{}/retry", "/joobq/jobs/{}/cancel"]
)
def test_an_unknown_jid_is_404_and_a_malformed_one_422(
    shared_client: httpx.Client, path: str
) -> None:
    method = "GET" if path.endswith("{}") else "POST"
    unknown = shared_client.request(method, path.format("0190f3c4-0000-7000-8000-000000000000"))
    assert unknown.status_code == 404 and "no job" in unknown.json()["error"]
    malformed = shared_client.request(method, path.format("not-a-uuid"))
    assert malformed.status_code == 422
    assert malformed.json()["field"] == "jid" and "'not-a-uuid'" in malformed.json()["error"]


def test_the_jobs_list_filters_by_queue_status_and_type(
    client: httpx.Client, web_app: JoobQ
) -> None:
    mail = [WebEmail.enqueue(to=str(i)) for i in range(3)]
    WebReport.enqueue(name="r")
    fail_queue(web_app, REPORTS)
    by_queue = client.get("/joobq/jobs", params={"queue": MAIL}).json()
    assert [j["jid"] for j in by_queue["jobs"]] == [str(j) for j in reversed(mail)]
    dead = client.get("/joobq/jobs", params={"status": "dead"}).json()["jobs"]
    assert [j["job_type"] for j in dead] == ["WebReport"]
    typed = client.get("/joobq/jobs", params={"job_type": "WebEmail", "limit": 2}).json()
    assert len(typed["jobs"]) == 2 and typed["next_offset"] == 2


@pytest.mark.parametrize(
    ("query", "field", "fragment"),
    [
        ({"status": "Enqueued"}, "status", "enqueued, scheduled"),
        ({"status": "expired"}, "status", "'expired'"),
        ({"limit": "0"}, "limit", "1..500"),
        ({"limit": "501"}, "limit", "501"),
        ({"limit": "ten"}, "limit", "'ten'"),
        ({"offset": "-1"}, "offset", "0..1000000"),
        ({"queue": "x" * 101}, "queue", "at most 100"),
    ],
)
def test_bad_list_parameters_are_422(
    shared_client: httpx.Client, query: dict[str, str], field: str, fragment: str
) -> None:
    for path in ("/joobq/jobs", "/joobq/jobs/dead", "/joobq/jobs/retrying"):
        if field == "status" and path != "/joobq/jobs":
            continue
        response = shared_client.get(path, params=query)
        assert response.status_code == 422, path
        assert response.json()["field"] == field and fragment in response.json()["error"]


def test_retrying_and_dead_jobs_are_listed_by_queue_and_paginated(
    client: httpx.Client, web_app: JoobQ
) -> None:
    for i in range(5):
        WebEmail.enqueue(to=str(i))
    retrying = fail_queue(web_app, MAIL, retry_in=3600)
    WebReport.enqueue(name="a")
    WebReport.enqueue(name="b")
    dead = fail_queue(web_app, REPORTS)
    page = client.get("/joobq/jobs/retrying", params={"queue": MAIL, "limit": 2, "offset": 2})
    assert page.status_code == 200
    body = page.json()
    assert [j["jid"] for j in body["jobs"]] == [str(j) for j in list(reversed(retrying))[2:4]]
    assert (body["limit"], body["offset"], body["next_offset"], body["queue"]) == (2, 2, 4, MAIL)
    assert all(j["status"] == "retrying" for j in body["jobs"])
    assert client.get("/joobq/jobs/retrying", params={"queue": REPORTS}).json()["jobs"] == []
    dead_page = client.get("/joobq/jobs/dead").json()
    assert sorted(j["jid"] for j in dead_page["jobs"]) == sorted(str(j) for j in dead)
    assert dead_page["next_offset"] is None
    assert client.get("/joobq/jobs/dead", params={"queue": MAIL}).json()["jobs"] == []


def test_retry_re_drives_a_dead_job_keeping_its_errors(
    client: httpx.Client, web_app: JoobQ
) -> None:
    jid = WebEmail.enqueue(to="a")
    fail_queue(web_app, MAIL)
    response = client.post(f"/joobq/jobs/{jid}/retry")
    assert response.status_code == 200
    assert response.json() == {"jid": str(jid), "retried": True, "status": "enqueued"}
    record = web_app.store.get_job(jid)
    assert record is not None and record.status is JobStatus.ENQUEUED and len(record.errors) == 1
    again = client.post(f"/joobq/jobs/{jid}/retry")
    assert again.status_code == 409 and "enqueued" in again.json()["error"]


def test_cancel_kills_a_waiting_job_and_refuses_a_finished_one(
    client: httpx.Client, web_app: JoobQ
) -> None:
    jid = WebEmail.enqueue(to="a")
    response = client.post(f"/joobq/jobs/{jid}/cancel")
    assert response.status_code == 200 and response.json()["result"] == "cancelled"
    record = web_app.store.get_job(jid)
    assert record is not None and record.status is JobStatus.DEAD
    assert record.dead_reason == "cancelled"
    again = client.post(f"/joobq/jobs/{jid}/cancel")
    assert again.status_code == 409 and "dead" in again.json()["error"]


def test_cancel_asks_a_running_job_to_stop(client: httpx.Client, web_app: JoobQ) -> None:
    jid = WebEmail.enqueue(to="a")
    web_app.store.claim_jobs(MAIL, "w", 1)
    assert client.post(f"/joobq/jobs/{jid}/cancel").json()["result"] == "requested"
    assert web_app.store.cancel_requested("w", [jid]) == {jid}


def test_delete_removes_a_job_in_any_state(client: httpx.Client, web_app: JoobQ) -> None:
    jid = WebEmail.enqueue(to="a")
    response = client.delete(f"/joobq/jobs/{jid}")
    assert response.status_code == 200 and response.json()["deleted"] is True
    assert web_app.store.get_job(jid) is None
    assert client.delete(f"/joobq/jobs/{jid}").status_code == 404


# -- queues -------------------------------------------------------------------------------------


def test_queues_list_their_counts_totals_and_pauses(client: httpx.Client, web_app: JoobQ) -> None:
    WebEmail.enqueue(to="a")
    WebEmail.delay(600, to="b")
    WebReport.enqueue(name="r")
    fail_queue(web_app, REPORTS)
    web_app.pause(REPORTS)
    queues = {q["queue"]: q for q in client.get("/joobq/queues").json()["queues"]}
    stats = web_app.stats()
    mail = queues[MAIL]
    assert (mail["waiting"], mail["due_later"], mail["dead"], mail["paused"]) == (1, 1, 0, False)
    assert mail["workers"] == 2
    reports = queues[REPORTS]
    assert (reports["dead"], reports["paused"], reports["workers"]) == (1, True, 1)
    assert reports["totals"] == dict(stats[REPORTS].totals)
    assert mail["oldest_waiting_age"] == pytest.approx(stats[MAIL].oldest_waiting_age, abs=2)


def test_pause_and_resume_a_queue(client: httpx.Client, web_app: JoobQ) -> None:
    response = client.post(f"/joobq/queues/{MAIL}/pause")
    assert response.json() == {"queue": MAIL, "paused": True, "changed": True}
    assert web_app.store.paused_queues() == {MAIL}
    assert client.post(f"/joobq/queues/{MAIL}/pause").json()["changed"] is False
    resumed = client.post(f"/joobq/queues/{MAIL}/resume")
    assert resumed.json() == {"queue": MAIL, "paused": False, "changed": True}
    assert web_app.store.paused_queues() == set()


def test_reprocess_re_drives_the_dead_jobs_of_that_queue_only(
    client: httpx.Client, web_app: JoobQ
) -> None:
    mail = [WebEmail.enqueue(to=str(i)) for i in range(3)]
    fail_queue(web_app, MAIL)
    report = WebReport.enqueue(name="r")
    fail_queue(web_app, REPORTS)
    response = client.post(f"/joobq/queues/{MAIL}/reprocess")
    assert response.status_code == 200
    assert response.json()["reprocessed"] == 3
    assert sorted(response.json()["jids"]) == sorted(str(j) for j in mail)
    assert {status_of(web_app, j) for j in mail} == {JobStatus.ENQUEUED}
    assert status_of(web_app, report) is JobStatus.DEAD


def test_purging_a_queues_dead_letter_deletes_only_its_dead_jobs(
    client: httpx.Client, web_app: JoobQ
) -> None:
    dead = [WebEmail.enqueue(to=str(i)) for i in range(2)]
    fail_queue(web_app, MAIL)
    waiting = WebEmail.enqueue(to="w")
    other = WebReport.enqueue(name="r")
    fail_queue(web_app, REPORTS)
    response = client.delete(f"/joobq/queues/{MAIL}/dead")
    assert response.json() == {"queue": MAIL, "deleted": 2}
    assert all(status_of(web_app, j) is None for j in dead)
    assert status_of(web_app, waiting) is JobStatus.ENQUEUED
    assert status_of(web_app, other) is JobStatus.DEAD


def test_a_bad_queue_in_the_path_is_422(shared_client: httpx.Client) -> None:
    response = shared_client.post("/joobq/queues/" + "q" * 101 + "/pause")
    assert response.status_code == 422 and response.json()["field"] == "queue"


# -- schedules ----------------------------------------------------------------------------------


def test_schedules_show_their_last_tick_and_next_run(
    make_app: Callable[..., JoobQ], serve: Callable[..., httpx.Client]
) -> None:
    app = make_app()
    app.queue(MAIL, jobs=[WebEmail])
    app.every(timedelta(minutes=10), WebEmail, name="digest", to="ops@example.com")
    app.cron("30 2 * * *", WebEmail, tz="Europe/Berlin", name="nightly", to="n@example.com")
    now = app.store.now()
    last = now.replace(microsecond=0) - timedelta(minutes=3)
    assert app.store.enqueue_tick("digest", last, app.schedule_job(app.schedules["digest"]))
    assert app.store.enqueue_tick("from-elsewhere", last, app.schedule_job(app.schedules["digest"]))
    rows = {r["name"]: r for r in serve(app).get("/joobq/schedules").json()["schedules"]}
    digest = rows["digest"]
    assert digest["job_type"] == "WebEmail" and digest["description"] == "every 600s"
    assert digest["fields"] == {"to": "ops@example.com", "subject": "hello", "copies": 1}
    from datetime import datetime

    assert datetime.fromisoformat(digest["last_tick"]) == last
    next_run = datetime.fromisoformat(digest["next_run"])
    assert timedelta(0) < next_run - now <= timedelta(minutes=10)
    assert next_run.timestamp() % 600 == 0
    nightly = rows["nightly"]
    assert nightly["last_tick"] is None and "Europe/Berlin" in nightly["description"]
    assert timedelta(0) < datetime.fromisoformat(nightly["next_run"]) - now <= timedelta(days=1)
    elsewhere = rows["from-elsewhere"]
    assert (elsewhere["defined"], elsewhere["next_run"]) == (False, None)


# -- methods and the OpenAPI document -----------------------------------------------------------

MUTATING = [e for e in ENDPOINTS if e.method in ("POST", "DELETE")]


@pytest.mark.parametrize("endpoint", MUTATING, ids=lambda e: f"{e.method} {e.path}")
def test_a_get_on_a_mutating_endpoint_is_405(shared_client: httpx.Client, endpoint: Any) -> None:
    path = endpoint.path.format(jid="0190f3c4-0000-7000-8000-000000000000", queue=MAIL)
    if endpoint.path in {e.path for e in ENDPOINTS if e.method == "GET"}:
        response = shared_client.put(path)  # the path also reads: other methods are refused
    else:
        response = shared_client.get(path)
    assert response.status_code == 405
    assert endpoint.method in response.headers["allow"]
    assert "not allowed" in response.json()["error"]


def test_the_openapi_document_describes_every_endpoint(shared_client: httpx.Client) -> None:
    document = shared_client.get("/openapi.json").json()
    assert document["openapi"].startswith("3.1")
    described = {
        (method.upper(), path) for path, ops in document["paths"].items() for method in ops
    }
    assert described == {(e.method, e.path) for e in ENDPOINTS}
    body = document["paths"]["/joobq/jobs"]["post"]["requestBody"]
    schema = body["content"]["application/json"]["schema"]
    assert schema["properties"]["priority"] == {"type": "integer", "minimum": 0, "maximum": 100}
    assert {"201", "400", "422"} <= set(document["paths"]["/joobq/jobs"]["post"]["responses"])
