"""Hostile input at the web server's edges, one table of named cases per edge, all over real
HTTP (a uvicorn server on a loopback port; http.client where the request must leave exactly as
written: a Host header of our choosing, a path no client may normalise).

Choices these tests document:

- DNS rebinding: without a token, only Host names of this machine are served (localhost,
  127.0.0.0/8 and ::1, any port), plus the names of `allowed_hosts` ('*': any). Any other Host
  gets 403 naming it and how to allow it, before anything is read or written. With a token the
  token is the guard, so any Host is served, unless `allowed_hosts` is given.
- A queue name travels as one percent-encoded path segment (quote(name, safe="")), in the API
  and in the dashboard's buttons. Routes match the raw path and decode each segment once, so
  /joobq/queues/a%2Fb/pause is the queue "a/b", a%252Fb is "a%2Fb", and a '/' the client left
  unencoded is a segment boundary: /joobq/queues/a/b/pause is a 404 and acts on nothing.
- A path or query string whose percent-decoded bytes are not UTF-8 is a 400 naming the bad
  part; it is never read with replacement characters.
- With the database away, every endpoint that needs it answers 503 with a one-line reason and
  Retry-After (the dashboard a page saying the database is unreachable), and nothing is logged
  as a traceback.
"""

from __future__ import annotations

import http.client
import json
import logging
import re
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from html import unescape
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import pytest

from joobq_sql import ConfigurationError, JobStatus, JoobQ, NewJob, PostgresStore
from joobq_sql.web import create_app
from joobq_sql.web.api import ENDPOINTS, ApiEndpoint
from joobq_sql.web.server import BackgroundServer
from tests.conftest import _create_database, _drop_database
from tests.fault_server import DedicatedServer, dedicated_server
from tests.test_web_support import MAIL, WebEmail, fail_queue

# -- fixtures and helpers -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def edge_app(admin_url: str, migrated_template: str) -> Iterator[JoobQ]:
    """One application on one database for the module; each test uses queues of its own."""
    name = f"joobq_w_{uuid.uuid4().hex[:12]}"
    url = _create_database(admin_url, name, template=migrated_template)
    app = JoobQ(store=PostgresStore(url, pool_size=2), database_url=url)
    app.queue(MAIL, workers=1, jobs=[WebEmail])
    yield app
    app.close()
    _drop_database(admin_url, name)


def _server(asgi: Any, log_level: str = "critical") -> BackgroundServer:
    return BackgroundServer(asgi, host="127.0.0.1", port=0, log_level=log_level).start()


@pytest.fixture(scope="module")
def url(edge_app: JoobQ) -> Iterator[str]:
    """A token-less server of the module's application."""
    with _server(create_app(edge_app)) as server:
        yield server.url


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    text: str

    def error(self) -> str:
        error = json.loads(self.text)["error"]
        assert isinstance(error, str)
        return error


KEEP = object()


def send(
    url: str,
    method: str,
    target: str,
    *,
    host: Any = KEEP,
    headers: dict[str, str] | None = None,
) -> Answer:
    """One request with `target` sent byte for byte as written and the Host header `host`
    (default: the server's own address; None: no Host header at all)."""
    address = urlsplit(url)
    assert address.hostname is not None
    conn = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
    try:
        conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
        if host is not None:
            conn.putheader("Host", address.netloc if host is KEEP else host)
        for name, value in (headers or {}).items():
            conn.putheader(name, value)
        if method in ("POST", "DELETE"):
            conn.putheader("Content-Length", "0")
        conn.endheaders()
        response = conn.getresponse()
        body = response.read().decode("utf-8", "replace")
        return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, body)
    finally:
        conn.close()


def segment(name: str) -> str:
    """A queue name as one path segment, as clients must send it."""
    return quote(name, safe="")


def tag() -> str:
    return uuid.uuid4().hex[:6]


def add_dead(app: JoobQ, queue: str, count: int = 1) -> None:
    app.store.enqueue_jobs(
        [NewJob.from_job(WebEmail(to=f"{i}@example.com"), queue=queue) for i in range(count)]
    )
    fail_queue(app, queue)


def dead_count(app: JoobQ, queue: str) -> int:
    return len(app.store.search_jobs(queue=queue, status=JobStatus.DEAD, limit=1000))


def paused_among(app: JoobQ, names: set[str]) -> set[str]:
    return app.store.paused_queues() & names


# -- 5. DNS rebinding: the Host header ------------------------------------------------------------

#: Host headers a token-less server must refuse. {port} is the server's port.
FOREIGN_HOSTS: dict[str, str] = {
    "a rebinding name with the server's port": "evil.example:{port}",
    "a rebinding name without a port": "evil.example",
    "localhost as a subdomain of the attacker's name": "localhost.evil.example:{port}",
    "a loopback address as a subdomain of the attacker's name": "127.0.0.1.evil.example:{port}",
    "a loopback name as userinfo before the attacker's name": "localhost@evil.example:{port}",
    "the any-address 0.0.0.0": "0.0.0.0:{port}",
    "a LAN address": "192.168.1.20:{port}",
    "an empty Host header": "",
    "a Host header with two names": "localhost, evil.example",
}


@pytest.mark.parametrize("host", FOREIGN_HOSTS.values(), ids=FOREIGN_HOSTS.keys())
def test_a_host_that_is_not_this_machine_is_refused_without_a_token(
    host: str, url: str, edge_app: JoobQ
) -> None:
    port = urlsplit(url).port
    host = host.format(port=port)
    queue = f"rebind-{tag()}"
    origin = {"Origin": f"http://{host}"}  # the rebound page's own origin: not cross-site
    for method, target in (
        ("GET", "/joobq/jobs"),
        ("GET", "/joobq/queues"),
        ("GET", "/"),
        ("GET", "/metrics"),
        ("POST", f"/joobq/queues/{queue}/pause"),
    ):
        answer = send(url, method, target, host=host, headers=origin)
        assert answer.status == 403, (method, target, answer.text[:300])
        error = answer.error()
        assert "\n" not in error
        assert f"Host {host!r} is not allowed" in error, error
        assert "allowed_hosts" in error and "JOOBQ_ALLOWED_HOSTS" in error, error
    assert paused_among(edge_app, {queue}) == set()


def test_a_request_without_a_host_header_is_refused_without_a_token(url: str) -> None:
    """HTTP/1.1 demands a Host header (the server itself answers 400 without one); HTTP/1.0
    does not, so the app sees the request and must refuse it."""
    assert send(url, "GET", "/joobq/jobs", host=None).status == 400
    address = urlsplit(url)
    assert address.hostname is not None and address.port is not None
    answer = b""
    with socket.create_connection((address.hostname, address.port), timeout=30) as sock:
        sock.sendall(b"GET /joobq/jobs HTTP/1.0\r\n\r\n")
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 403"), answer[:300]
    assert "no Host header" in json.loads(body)["error"]


#: Host headers of this machine: served without a token.
LOOPBACK_HOSTS: dict[str, str] = {
    "localhost with the port": "localhost:{port}",
    "localhost without a port": "localhost",
    "localhost in capitals": "LocalHost:{port}",
    "127.0.0.1 with the port": "127.0.0.1:{port}",
    "another address of 127.0.0.0/8": "127.0.0.2:{port}",
    "::1 in brackets": "[::1]:{port}",
}


@pytest.mark.parametrize("host", LOOPBACK_HOSTS.values(), ids=LOOPBACK_HOSTS.keys())
def test_a_loopback_host_is_served_without_a_token(host: str, url: str, edge_app: JoobQ) -> None:
    host = host.format(port=urlsplit(url).port)
    assert send(url, "GET", "/joobq/jobs", host=host).status == 200
    queue = f"loop-{tag()}"
    answer = send(url, "POST", f"/joobq/queues/{queue}/pause", host=host)
    assert answer.status == 200, answer.text[:300]
    assert paused_among(edge_app, {queue}) == {queue}


def test_allowed_hosts_adds_names_to_the_loopback_ones(edge_app: JoobQ) -> None:
    asgi = create_app(edge_app, allowed_hosts=["dash.example", "10.0.0.7", "[fd00::7]"])
    with _server(asgi) as server:
        port = server.port
        for host in ("dash.example", f"DASH.example:{port}", f"10.0.0.7:{port}", "[fd00::7]"):
            assert send(server.url, "GET", "/joobq/jobs", host=host).status == 200, host
        assert send(server.url, "GET", "/joobq/jobs", host=f"localhost:{port}").status == 200
        refused = send(server.url, "GET", "/joobq/jobs", host=f"evil.example:{port}")
        assert refused.status == 403
        assert "dash.example" in refused.error()  # it says what is allowed


def test_allowed_hosts_star_serves_any_host(edge_app: JoobQ) -> None:
    with _server(create_app(edge_app, allowed_hosts=["*"])) as server:
        assert send(server.url, "GET", "/joobq/jobs", host="evil.example").status == 200


def test_allowed_hosts_comes_from_the_environment(
    edge_app: JoobQ, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOOBQ_ALLOWED_HOSTS", "dash.example, other.example")
    with _server(create_app(edge_app)) as server:
        assert send(server.url, "GET", "/joobq/jobs", host="other.example").status == 200
        assert send(server.url, "GET", "/joobq/jobs", host="evil.example").status == 403


def test_with_a_token_any_host_is_served_as_before(edge_app: JoobQ) -> None:
    bearer = {"Authorization": "Bearer host-token"}
    with _server(create_app(edge_app, token="host-token")) as server:
        answer = send(server.url, "GET", "/joobq/jobs", host="dash.example:443", headers=bearer)
        assert answer.status == 200, answer.text[:300]
        unauthorised = send(server.url, "GET", "/joobq/jobs", host="dash.example")
        assert unauthorised.status == 401


def test_with_a_token_and_allowed_hosts_only_those_hosts_are_served(edge_app: JoobQ) -> None:
    bearer = {"Authorization": "Bearer host-token"}
    asgi = create_app(edge_app, token="host-token", allowed_hosts=["dash.example"])
    with _server(asgi) as server:
        allowed = send(server.url, "GET", "/joobq/jobs", host="dash.example", headers=bearer)
        assert allowed.status == 200
        refused = send(server.url, "GET", "/joobq/jobs", host="evil.example", headers=bearer)
        assert refused.status == 403


BAD_ALLOWED_HOSTS: dict[str, Any] = {
    "an empty name": "",
    "a URL instead of a name": "http://dash.example/",
    "a name with a port": "dash.example:8080",
    "a name with a path": "dash.example/admin",
    "a name with a space": "dash example",
    "a wildcard inside a name": "*.example",
    "a number instead of a name": 8080,
}


@pytest.mark.parametrize("entry", BAD_ALLOWED_HOSTS.values(), ids=BAD_ALLOWED_HOSTS.keys())
def test_a_bad_allowed_hosts_entry_is_refused_naming_it(edge_app: JoobQ, entry: Any) -> None:
    with pytest.raises(ConfigurationError) as raised:
        create_app(edge_app, allowed_hosts=[entry])
    assert "allowed_hosts" in str(raised.value) and repr(entry) in str(raised.value)


# -- 6. queue names that are not one path segment as they stand ---------------------------------

#: Queue names with the characters a URL path treats specially.
PATH_NAMES: dict[str, str] = {
    "a slash": "a/b",
    "a dot-dot segment between slashes": "x/../victim",
    "a leading slash": "/lead",
    "a trailing slash": "trail/",
    "an encoded slash, literally": "a%2Fb",
    "a percent sign": "100%",
    "a question mark": "what?now",
    "a hash": "a#b",
    "a space and a plus": "a b+c",
    "a backslash": "a\\b",
    "a semicolon": "a;b=c",
    "non-ASCII letters and an emoji": "naïve/ünï 🚀",
}


@pytest.mark.parametrize("name", PATH_NAMES.values(), ids=PATH_NAMES.keys())
def test_a_queue_name_round_trips_as_one_encoded_path_segment(
    name: str, url: str, edge_app: JoobQ
) -> None:
    name = f"{name}-{tag()}"
    answer = send(url, "POST", f"/joobq/queues/{segment(name)}/pause")
    assert answer.status == 200, answer.text[:300]
    assert json.loads(answer.text)["queue"] == name
    assert name in edge_app.store.paused_queues()
    answer = send(url, "POST", f"/joobq/queues/{segment(name)}/resume")
    assert answer.status == 200 and json.loads(answer.text)["queue"] == name
    assert name not in edge_app.store.paused_queues()


def test_a_slash_left_unencoded_is_a_segment_boundary_and_acts_on_no_queue(
    url: str, edge_app: JoobQ
) -> None:
    t = tag()
    names = {f"a{t}", f"b{t}", f"a{t}/b{t}"}
    answer = send(url, "POST", f"/joobq/queues/a{t}/b{t}/pause")
    assert answer.status == 404, answer.text[:300]
    assert paused_among(edge_app, names) == set()


def test_purging_x_dot_dot_victim_deletes_only_its_own_dead_jobs(url: str, edge_app: JoobQ) -> None:
    victim = f"victim{tag()}"
    hostile = f"x/../{victim}"
    add_dead(edge_app, victim, 2)
    add_dead(edge_app, hostile, 1)
    answer = send(url, "DELETE", f"/joobq/queues/{segment(hostile)}/dead")
    assert answer.status == 200, answer.text[:300]
    assert json.loads(answer.text) == {"queue": hostile, "deleted": 1}
    assert (dead_count(edge_app, hostile), dead_count(edge_app, victim)) == (0, 2)


def test_a_dot_dot_segment_sent_as_is_reaches_no_other_queue(url: str, edge_app: JoobQ) -> None:
    """The server never resolves '..' itself (a browser does, before sending): a path that
    says x/../victim names no queue route at all."""
    victim = f"victim{tag()}"
    add_dead(edge_app, victim, 1)
    answer = send(url, "DELETE", f"/joobq/queues/x/../{victim}/dead")
    assert answer.status == 404, answer.text[:300]
    assert dead_count(edge_app, victim) == 1


def test_a_double_encoded_slash_is_decoded_once(url: str, edge_app: JoobQ) -> None:
    t = tag()
    answer = send(url, "POST", f"/joobq/queues/a{t}%252Fb/pause")
    assert answer.status == 200 and json.loads(answer.text)["queue"] == f"a{t}%2Fb"
    assert paused_among(edge_app, {f"a{t}%2Fb", f"a{t}/b"}) == {f"a{t}%2Fb"}


def _button_actions(html: str, queue: str) -> list[str]:
    """The data-action of every button in the element that carries data-queue="queue"."""
    attribute = re.escape(f'data-queue="{queue}"'.replace("&", "&amp;"))
    block = re.search(attribute + r".*?</(tr|div)>", html, re.S)
    assert block, f"no element for queue {queue!r}"
    return [unescape(a) for a in re.findall(r'data-action="([^"]*)"', block.group(0))]


@pytest.mark.parametrize("name", PATH_NAMES.values(), ids=PATH_NAMES.keys())
def test_the_dashboards_buttons_act_on_the_queue_they_are_shown_with(
    name: str, url: str, edge_app: JoobQ
) -> None:
    """What the dashboard's script does with a button, without a browser: POST or DELETE its
    data-action below the dashboard's base. (tests/test_web_browser.py clicks them in one.)"""
    t = tag()
    name = f"{name}{t}"
    victim = f"victim{t}"
    add_dead(edge_app, name, 1)
    add_dead(edge_app, victim, 1)
    with httpx.Client(base_url=url, timeout=30) as client:
        (pause,) = _button_actions(client.get("/").text, name)
        assert pause == f"/joobq/queues/{segment(name)}/pause"
        assert send(url, "POST", pause).status == 200
        assert paused_among(edge_app, {name, victim}) == {name}
        retry, purge = _button_actions(client.get("/dead").text, name)
        assert purge == f"/joobq/queues/{segment(name)}/dead"
        assert retry == f"/joobq/queues/{segment(name)}/reprocess"
        assert send(url, "DELETE", purge).status == 200
        assert (dead_count(edge_app, name), dead_count(edge_app, victim)) == (0, 1)


# -- 7. paths that are not UTF-8 -----------------------------------------------------------------

#: Requests whose percent-decoded path or query is not UTF-8: (method, target, the bad part).
NOT_UTF8: dict[str, tuple[str, str, str]] = {
    "%ff%fe as a queue name": ("POST", "/joobq/queues/%ff%fe/pause", "%ff%fe"),
    "an overlong encoding of '/'": ("POST", "/joobq/queues/a%c0%afb/pause", "a%c0%afb"),
    "a UTF-16 surrogate encoded as UTF-8": ("POST", "/joobq/queues/%ed%a0%80/resume", "%ed%a0%80"),
    "a truncated sequence": ("DELETE", "/joobq/queues/euro%e2%82/dead", "euro%e2%82"),
    "Latin-1 instead of UTF-8": ("POST", "/joobq/queues/caf%e9/reprocess", "caf%e9"),
    "a jid that is not UTF-8": ("GET", "/joobq/jobs/%ff", "%ff"),
    "a dashboard path that is not UTF-8": ("GET", "/jobs/%ff", "%ff"),
    "an unknown path that is not UTF-8": ("GET", "/joobq/%ff/nothing", "%ff"),
    "a queue filter that is not UTF-8": ("GET", "/joobq/jobs?queue=%ff%fe", "queue=%ff%fe"),
    "a dashboard filter that is not UTF-8": ("GET", "/dead?queue=caf%e9", "queue=caf%e9"),
}


@pytest.mark.parametrize("case", NOT_UTF8.values(), ids=NOT_UTF8.keys())
def test_a_path_or_query_that_is_not_utf8_is_a_400_naming_it(
    case: tuple[str, str, str], url: str, edge_app: JoobQ
) -> None:
    method, target, bad = case
    before = edge_app.store.paused_queues()
    answer = send(url, method, target)
    assert answer.status == 400, answer.text[:300]
    message = answer.error() if target.startswith("/joobq/") else answer.text
    assert "\n" not in message.strip()
    assert "not valid UTF-8" in message and bad in message, message
    assert edge_app.store.paused_queues() == before


# -- 8. the database away ------------------------------------------------------------------------


@dataclass
class DownServer:
    url: str
    logged: list[logging.LogRecord]


class _Records(logging.Handler):
    def __init__(self, records: list[logging.LogRecord]) -> None:
        super().__init__(logging.DEBUG)
        self.records = records

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(scope="module")
def database_down() -> Iterator[DownServer]:
    """A web server whose application's database (a PostgreSQL of its own) has been stopped
    after serving a first request; every log record of the server is kept."""
    server: DedicatedServer
    with dedicated_server() as server:
        database = server.create_database("joobq_down")
        app = JoobQ(store=PostgresStore(database, pool_size=2), database_url=database)
        app.queue(MAIL, workers=1, jobs=[WebEmail])
        records: list[logging.LogRecord] = []
        handler = _Records(records)
        try:
            # "error": uvicorn's log of an exception that escaped the app (a 500) is kept.
            with _server(create_app(app), log_level="error") as web:
                for name in ("uvicorn", "uvicorn.error", "joobq_sql"):
                    logging.getLogger(name).addHandler(handler)
                # Up first, so the pool holds connections that the stop then breaks.
                assert httpx.get(f"{web.url}/joobq/queues", timeout=30).status_code == 200
                server.stop()
                yield DownServer(web.url, records)
        finally:
            for name in ("uvicorn", "uvicorn.error", "joobq_sql"):
                logging.getLogger(name).removeHandler(handler)
            app.close()


JID = "0190f3c4-0000-7000-8000-000000000000"


def _request(endpoint: ApiEndpoint) -> tuple[str, str, dict[str, Any] | None]:
    path = endpoint.path.format(jid=JID, queue=MAIL)
    body = {"job_type": "WebEmail", "data": {"to": "a@example.com"}}
    return endpoint.method, path, body if endpoint.method == "POST" else None


@pytest.mark.parametrize(
    "endpoint",
    [e for e in ENDPOINTS if e.database],
    ids=lambda e: f"{e.method} {e.path}",
)
def test_every_api_endpoint_answers_503_with_a_one_line_reason_when_the_database_is_down(
    endpoint: ApiEndpoint, database_down: DownServer
) -> None:
    method, path, body = _request(endpoint)
    database_down.logged.clear()
    response = httpx.request(method, database_down.url + path, json=body, timeout=30)
    assert response.status_code == 503, response.text[:500]
    error = response.json()["error"]
    assert "\n" not in error and "unreachable" in error, error
    assert "Traceback" not in response.text
    assert response.headers["retry-after"].isdigit()
    tracebacks = [r.getMessage() for r in database_down.logged if r.exc_info]
    assert tracebacks == []
    logged = [r.getMessage() for r in database_down.logged if r.name == "joobq_sql.web"]
    # One line in the log, as in the answer; the health check's 503 is its answer, not news.
    expected = [] if path == "/joobq/health/check" else [f"{method} {path}: {error}"]
    assert logged == expected


@pytest.mark.parametrize("page", ["/", "/jobs", f"/jobs/{JID}", "/dead", "/schedules"])
def test_every_dashboard_page_says_the_database_is_unreachable(
    page: str, database_down: DownServer
) -> None:
    database_down.logged.clear()
    response = httpx.get(database_down.url + page, timeout=30)
    assert response.status_code == 503, response.text[:500]
    assert response.headers["content-type"].startswith("text/html")
    assert "The database is unreachable" in response.text
    assert 'id="content"' in response.text  # the page's own refresh swaps it back in
    assert response.headers["retry-after"].isdigit()
    assert [r.getMessage() for r in database_down.logged if r.exc_info] == []


def test_metrics_and_health_answer_503_with_the_same_reason_when_the_database_is_down(
    database_down: DownServer,
) -> None:
    metrics = httpx.get(database_down.url + "/metrics", timeout=30)
    assert metrics.status_code == 503 and metrics.headers["retry-after"].isdigit()
    assert metrics.text.startswith("the database is unreachable: ") and "\n" not in metrics.text
    health = httpx.get(database_down.url + "/joobq/health/check", timeout=30)
    assert health.status_code == 503 and health.headers["retry-after"].isdigit()
    assert health.json()["error"].startswith("the database is unreachable: ")


def test_the_job_registry_answers_without_the_database(database_down: DownServer) -> None:
    assert httpx.get(database_down.url + "/joobq/jobs/registry", timeout=30).status_code == 200


def test_the_openapi_document_lists_503_for_every_endpoint_that_needs_the_database(
    url: str,
) -> None:
    document = httpx.get(f"{url}/openapi.json", timeout=30).json()
    for endpoint in ENDPOINTS:
        responses = document["paths"][endpoint.path][endpoint.method.lower()]["responses"]
        assert ("503" in responses) is endpoint.database, endpoint.path
        assert {"400", "403"} <= set(responses), endpoint.path
