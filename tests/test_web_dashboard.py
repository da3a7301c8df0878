"""The dashboard's pages through real HTTP: what each shows, its filters and pages, escaping of
every user value, and mounting inside another ASGI application."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from datetime import timedelta

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

from joobq_sql import JoobQ
from joobq_sql.web import create_app
from tests.test_web_support import MAIL, REPORTS, WebEmail, WebReport, fail_queue

pytest_plugins = ["tests.test_web_support"]

SCRIPT = "<script>alert(1)</script>"


def rows(page: str, table_id: str) -> list[str]:
    body = page.split(f'id="{table_id}"', 1)[1].split("</table>", 1)[0]
    return re.findall(r"<tr data-[a-z]+=.*?</tr>", body, flags=re.S)


def test_the_overview_shows_each_queues_counts_and_pauses(
    client: httpx.Client, web_app: JoobQ
) -> None:
    for i in range(3):
        WebEmail.enqueue(to=str(i))
    WebReport.enqueue(name="r")
    fail_queue(web_app, REPORTS)
    web_app.pause(REPORTS)
    page = client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    (mail,) = [r for r in rows(page.text, "queues") if f'data-queue="{MAIL}"' in r]
    numbers = re.findall(r'<td class="num">(?:<a [^>]*>)?([^<]*)', mail)
    assert numbers[:5] == ["3", "0", "0", "0", "0"]  # waiting, due later, running, retrying, dead
    (reports,) = [r for r in rows(page.text, "queues") if f'data-queue="{REPORTS}"' in r]
    assert "paused" in reports and 'data-action="/joobq/queues/web-reports/resume"' in reports
    assert re.search(r'<ul id="paused"><li>web-reports', page.text)
    assert "jobs completed in the last" in page.text
    assert 'data-refresh="5"' in page.text  # the page refreshes itself


def test_the_jobs_list_filters_and_pages(client: httpx.Client, web_app: JoobQ) -> None:
    emails = [WebEmail.enqueue(to=str(i)) for i in range(55)]
    WebReport.enqueue(name="r")
    first = client.get("/jobs", params={"queue": MAIL})
    listed = rows(first.text, "jobs")
    assert len(listed) == 50 and str(emails[-1]) in listed[0]
    assert 'href="?queue=web-mail&amp;page=2"' in first.text
    second = client.get("/jobs", params={"queue": MAIL, "page": 2})
    assert len(rows(second.text, "jobs")) == 5 and 'rel="next"' not in second.text
    by_type = client.get("/jobs", params={"job_type": "WebReport"})
    assert len(rows(by_type.text, "jobs")) == 1
    fail_queue(web_app, REPORTS)
    dead = client.get("/jobs", params={"status": "dead"})
    assert len(rows(dead.text, "jobs")) == 1 and "status-dead" in dead.text
    assert client.get("/jobs", params={"status": "nope"}).status_code == 422


def test_a_job_page_shows_args_attempts_and_every_error_with_its_traceback(
    client: httpx.Client, web_app: JoobQ
) -> None:
    jid = WebReport.enqueue(name="weekly", tags=["x"])
    fail_queue(web_app, REPORTS, retry_in=0)
    web_app.store.retry_jobs([jid])
    fail_queue(web_app, REPORTS, TimeoutError("the report took too long"))
    page = client.get(f"/jobs/{jid}").text
    assert "&#34;name&#34;: &#34;weekly&#34;" in page  # the args, as escaped JSON
    assert "2 runs; 0 of 1 retries left" in page
    assert page.count('<article class="error">') == 2
    assert "the report took too long" in page and "TimeoutError" in page
    assert "Traceback (most recent call last)" in page
    assert 'data-action="/joobq/jobs/' + str(jid) + '/retry"' in page


def test_an_unknown_job_page_is_404(client: httpx.Client) -> None:
    response = client.get("/jobs/0190f3c4-0000-7000-8000-000000000000")
    assert response.status_code == 404 and "no job with jid" in response.text


def test_the_dead_letter_lists_dead_jobs_with_retry_and_purge(
    client: httpx.Client, web_app: JoobQ
) -> None:
    dead = [WebEmail.enqueue(to=str(i)) for i in range(2)]
    fail_queue(web_app, MAIL)
    WebEmail.enqueue(to="alive")
    page = client.get("/dead").text
    listed = rows(page, "dead-jobs")
    assert {re.search(r'data-jid="([^"]+)"', r)[1] for r in listed} == {str(j) for j in dead}  # type: ignore[index]
    assert f'data-action="/joobq/jobs/{dead[0]}/retry"' in page
    assert 'data-action="/joobq/queues/web-mail/dead" data-method="DELETE"' in page
    assert 'data-action="/joobq/queues/web-mail/reprocess"' in page
    assert "web-mail</a>: 2 dead" in page


def test_the_schedules_page_lists_each_schedule(
    make_app: Callable[..., JoobQ], serve: Callable[..., httpx.Client]
) -> None:
    app = make_app()
    app.queue(MAIL, jobs=[WebEmail])
    app.every(timedelta(hours=1), WebEmail, name="hourly-digest", to="x")
    page = serve(app).get("/schedules").text
    assert "hourly-digest" in page and "every 3600s" in page and "WebEmail" in page


def test_every_user_value_is_escaped(client: httpx.Client, web_app: JoobQ) -> None:
    jid = WebEmail.enqueue(to=SCRIPT, subject='"><img src=x onerror=alert(2)>')
    WebEmail.enqueue(to="q", queue="<b>bold</b>")
    fail_queue(web_app, MAIL, ValueError(f"bad input {SCRIPT}"))
    pages = [
        client.get(f"/jobs/{jid}").text,
        client.get("/jobs").text,
        client.get("/dead").text,
        client.get("/").text,
    ]
    for page in pages:
        assert SCRIPT not in page and "<img src=x" not in page and "<b>bold" not in page
    detail = pages[0]
    assert html.escape(SCRIPT) in detail  # shown as text, in the args and the error
    assert detail.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 2
    assert "&lt;b&gt;bold&lt;/b&gt;" in pages[3]


def test_a_bad_filter_shows_an_escaped_error_page(client: httpx.Client) -> None:
    response = client.get("/jobs", params={"status": SCRIPT})
    assert response.status_code == 422
    assert SCRIPT not in response.text and "&lt;script&gt;" in response.text


def test_mounted_inside_another_app_its_links_and_api_live_under_the_mount(
    web_app: JoobQ, serve: Callable[..., httpx.Client]
) -> None:
    async def home(_request: object) -> PlainTextResponse:
        return PlainTextResponse("the user's own app")

    outer = Starlette(routes=[Route("/", home), Mount("/ops", app=create_app(web_app))])
    client = serve(asgi=outer)
    jid = WebEmail.enqueue(to="a")
    assert client.get("/").text == "the user's own app"
    page = client.get("/ops/jobs").text
    assert f'href="/ops/jobs/{jid}"' in page and 'data-base="/ops"' in page
    assert 'src="/ops/static/dashboard.js"' in page
    assert client.get("/ops/static/dashboard.js").status_code == 200
    assert client.get(f"/ops/joobq/jobs/{jid}").json()["jid"] == str(jid)
    assert client.post(f"/ops/joobq/jobs/{jid}/cancel").json()["result"] == "cancelled"


def test_a_mounted_dashboard_sets_its_cookie_for_the_mount_path(
    web_app: JoobQ, serve: Callable[..., httpx.Client]
) -> None:
    outer = Starlette(routes=[Mount("/ops", app=create_app(web_app, token="t0ken"))])
    client = serve(asgi=outer)
    login = client.get("/ops/", params={"token": "t0ken"})
    assert login.status_code == 303 and login.headers["location"] == "/ops/"
    assert "Path=/ops" in login.headers["set-cookie"]
    assert client.get("/ops/dead").status_code == 200


@pytest.mark.parametrize("path", ["/", "/jobs", "/dead", "/schedules"])
def test_dashboard_pages_are_not_cached(client: httpx.Client, path: str) -> None:
    assert client.get(path).headers["cache-control"] == "no-store"


def test_the_overview_shows_jobs_completed_in_the_last_hour_and_live_workers(
    client: httpx.Client, web_app: JoobQ
) -> None:
    for i in range(3):
        WebEmail.enqueue(to=str(i))
    claimed = web_app.store.claim_jobs(MAIL, "w", 2)
    web_app.store.complete_jobs([r.completion for r in claimed])
    web_app.store.worker_seen("web-test:1:x", host="web-test", pid=1, queues=[MAIL])
    page = client.get("/").text
    card = page.split('id="throughput"', 1)[1].split("</div>", 1)[0]
    assert '<span class="value">2</span>' in card and "jobs completed in the last hour" in card
    (mail,) = [r for r in rows(page, "queues") if f'data-queue="{MAIL}"' in r]
    assert re.findall(r'<td class="num">(?:<a [^>]*>)?([^<]*)', mail)[-1] == "2"
    alive = page.split('id="workers-alive"', 1)[1].split("</div>", 1)[0]
    assert '<span class="value">1</span>' in alive
    assert "web-test:1:x" in page.split('id="workers"', 1)[1]
    web_app.store.worker_gone("web-test:1:x")
