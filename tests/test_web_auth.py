"""Auth rules through real HTTP: the bearer token on every /joobq endpoint and /metrics, the
dashboard's one-time ?token= and its HttpOnly cookie, cross-site writes, loopback binding."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest

from joobq_sql import ConfigurationError, JoobQ
from joobq_sql.web import create_app, serve_in_background
from joobq_sql.web.api import ENDPOINTS, ApiEndpoint
from joobq_sql.web.auth import COOKIE, TOKEN_ENV, check_bind, is_loopback
from tests.test_web_support import MAIL, WebEmail

pytest_plugins = ["tests.test_web_support"]

TOKEN = "s3cret-token"
JID = "0190f3c4-0000-7000-8000-000000000000"


@pytest.fixture
def guarded(web_app: JoobQ, serve: Callable[..., httpx.Client]) -> httpx.Client:
    return serve(web_app, token=TOKEN)


@pytest.fixture(scope="module")
def shared_guarded(shared_app: JoobQ) -> Iterator[httpx.Client]:
    """A server with a token for the module's shared database (the endpoint sweep)."""
    with (
        serve_in_background(shared_app, port=0, token=TOKEN) as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        yield client


def _path(endpoint: ApiEndpoint) -> str:
    return endpoint.path.format(jid=JID, queue=MAIL)


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: f"{e.method} {e.path}")
def test_every_api_endpoint_needs_the_token(
    shared_guarded: httpx.Client, endpoint: ApiEndpoint
) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}):
        response = shared_guarded.request(endpoint.method, _path(endpoint), headers=headers)
        assert response.status_code == 401, headers
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert "bearer token" in response.json()["error"]
    allowed = shared_guarded.request(
        endpoint.method, _path(endpoint), headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert allowed.status_code != 401


def test_metrics_need_the_token_and_the_openapi_document_does_not(guarded: httpx.Client) -> None:
    assert guarded.get("/metrics").status_code == 401
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    assert guarded.get("/metrics", headers=bearer).status_code == 200
    assert guarded.get("/openapi.json").status_code == 200
    assert guarded.get("/static/dashboard.css").status_code == 200


def test_the_dashboard_takes_the_token_once_and_keeps_an_http_only_cookie(
    guarded: httpx.Client,
) -> None:
    page = guarded.get("/jobs", params={"status": "dead"})
    assert page.status_code == 401 and "needs its token" in page.text
    wrong = guarded.get("/jobs", params={"token": "nope"})
    assert wrong.status_code == 401 and COOKIE not in wrong.headers.get("set-cookie", "")
    login = guarded.get("/jobs", params={"status": "dead", "token": TOKEN})
    assert login.status_code == 303
    assert login.headers["location"] == "/jobs?status=dead"  # the token leaves the address
    cookie = login.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=") and TOKEN not in cookie
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    follow = guarded.get("/jobs", params={"status": "dead"})  # httpx kept the cookie
    assert follow.status_code == 200 and "<h1>Jobs</h1>" in follow.text
    assert guarded.get("/joobq/queues").status_code == 200  # the dashboard's API calls too


def test_the_token_comes_from_the_environment(
    web_app: JoobQ, serve: Callable[..., httpx.Client], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TOKEN_ENV, "from-env")
    client = serve(web_app)
    assert client.get("/joobq/queues").status_code == 401
    ok = client.get("/joobq/queues", headers={"Authorization": "Bearer from-env"})
    assert ok.status_code == 200


def test_without_a_token_the_api_is_open(client: httpx.Client) -> None:
    assert client.get("/joobq/queues").status_code == 200
    assert client.get("/").status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
    ],
)
def test_a_cross_site_write_is_refused_even_with_the_cookie(
    guarded: httpx.Client, web_app: JoobQ, headers: dict[str, str]
) -> None:
    jid = WebEmail.enqueue(to="a")
    guarded.get("/", params={"token": TOKEN})  # logged in: the cookie is set
    response = guarded.post(f"/joobq/jobs/{jid}/cancel", headers=headers)
    assert response.status_code == 403 and "cross-site" in response.json()["error"]
    record = web_app.store.get_job(jid)
    assert record is not None and record.status.value == "enqueued"


def test_a_same_origin_write_from_the_dashboard_is_allowed(
    guarded: httpx.Client, web_app: JoobQ
) -> None:
    jid = WebEmail.enqueue(to="a")
    guarded.get("/", params={"token": TOKEN})
    origin = str(guarded.base_url).rstrip("/")
    headers = {"Origin": origin, "Sec-Fetch-Site": "same-origin"}
    response = guarded.post(f"/joobq/jobs/{jid}/cancel", headers=headers)
    assert response.status_code == 200


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.7", "example.com"])
def test_a_non_loopback_bind_needs_a_token(host: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    assert not is_loopback(host)
    with pytest.raises(ConfigurationError, match=f"refusing to listen on '{host}' without a token"):
        serve_in_background(None, host=host, port=0)
    check_bind(host, "a-token")  # with a token it may


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"])
def test_loopback_addresses_need_no_token(host: str) -> None:
    assert is_loopback(host)
    check_bind(host, None)


def test_an_empty_token_argument_is_refused(web_app: JoobQ) -> None:
    with pytest.raises(ConfigurationError, match="token must be a non-empty string"):
        create_app(web_app, token=" ")
