"""What the web tests share (no tests here): job classes, a JoobQ application on the test's
database, a real uvicorn server per test, and helpers that put jobs into given states.

Every request goes through real HTTP: a uvicorn server on a free loopback port, in a thread of
the test process, and an httpx client. Class names start with "Web": job types are registered
by class name.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any
from uuid import UUID

import httpx
import pytest

from joobq_sql import Failure, Job, JobStatus, JoobQ
from joobq_sql.runtime.error_details import error_details
from joobq_sql.web import create_app
from joobq_sql.web.server import BackgroundServer

MAIL = "web-mail"
REPORTS = "web-reports"


class WebColour(Enum):
    RED = "red"
    BLUE = "blue"


@dataclass
class WebAddress:
    street: str
    zip_code: int | None = None


class WebEmail(Job):
    """Sends one email."""

    queue = MAIL
    to: str
    subject: str = "hello"
    copies: int = 1

    def perform(self) -> None:
        pass


class WebReport(Job):
    queue = REPORTS
    retries = 1
    name: str
    when: datetime | None = None
    colour: WebColour = WebColour.RED
    tags: list[str] | None = None
    address: WebAddress | None = None
    weights: dict[str, float] | None = None

    def perform(self) -> None:
        pass


class WebUnique(Job):
    queue = MAIL
    key: str

    def unique_key(self) -> str | None:
        return self.key

    def perform(self) -> None:
        pass


class WebUniqueStrict(WebUnique):
    on_duplicate = "raise"


@pytest.fixture
def web_app(make_app: Callable[..., JoobQ]) -> JoobQ:
    app = make_app()
    app.queue(MAIL, workers=2, jobs=[WebEmail, WebUnique, WebUniqueStrict])
    app.queue(REPORTS, workers=1, jobs=[WebReport])
    return app


@pytest.fixture(scope="module")
def shared_app(admin_url: str, migrated_template: str) -> Iterator[JoobQ]:
    """One application on one database for a whole module, for tests that write nothing (the
    validation tests): a database and a server per test would triple their time."""
    from joobq_sql import PostgresStore
    from tests.conftest import _create_database, _drop_database

    name = f"joobq_t_{uuid.uuid4().hex[:12]}"
    url = _create_database(admin_url, name, template=migrated_template)
    app = JoobQ(store=PostgresStore(url), database_url=url)
    app.queue(MAIL, workers=2, jobs=[WebEmail, WebUnique, WebUniqueStrict])
    app.queue(REPORTS, workers=1, jobs=[WebReport])
    yield app
    app.close()
    _drop_database(admin_url, name)


@pytest.fixture(scope="module")
def shared_client(shared_app: JoobQ) -> Iterator[httpx.Client]:
    """A real server for `shared_app`, kept for the module."""
    with (
        BackgroundServer(
            create_app(shared_app), host="127.0.0.1", port=0, log_level="warning"
        ).start() as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        yield client


@pytest.fixture
def serve() -> Iterator[Callable[..., httpx.Client]]:
    """serve(app, token=None, asgi=None) -> an httpx client of a real server for the app."""
    servers: list[BackgroundServer] = []
    clients: list[httpx.Client] = []

    def start(
        app: JoobQ | None = None, *, token: str | None = None, asgi: Any = None
    ) -> httpx.Client:
        server = BackgroundServer(
            asgi or create_app(app, token=token), host="127.0.0.1", port=0, log_level="warning"
        ).start()
        servers.append(server)
        client = httpx.Client(base_url=server.url, timeout=30)
        clients.append(client)
        return client

    yield start
    for client in clients:
        client.close()
    for server in servers:
        server.stop()


@pytest.fixture
def client(web_app: JoobQ, serve: Callable[..., httpx.Client]) -> httpx.Client:
    return serve(web_app)


def fail_queue(
    app: JoobQ,
    queue: str,
    exc: BaseException | None = None,
    *,
    retry_in: float | None = None,
) -> list[UUID]:
    """Claim every runnable job of `queue` and fail each run with `exc` (raised, so the error
    details carry a real traceback): dead without `retry_in`, else retrying. Returns the jids."""
    store = app.store
    records = store.claim_jobs(queue, "web-test-worker", 1000)
    failures = []
    for record in records:
        fresh = type(exc)(*exc.args) if exc is not None else None  # one traceback per run
        try:
            raise fresh or ValueError(f"cannot process {record.jid}")
        except BaseException as raised:
            details = error_details(
                raised,
                jid=record.jid,
                queue=record.queue,
                job_type=record.job_type,
                attempt=record.attempt,
                worker_id="web-test-worker",
            )
        failures.append(
            Failure(record.jid, record.attempt, record.worker_id, details, retry_in=retry_in)
        )
    changed = store.fail_jobs(failures)
    expected = JobStatus.DEAD if retry_in is None else JobStatus.RETRYING
    assert all(status is expected for status in changed.values()), changed
    return [record.jid for record in records]


def status_of(app: JoobQ, jid: UUID | str) -> JobStatus | None:
    record = app.store.get_job(UUID(str(jid)))
    return None if record is None else record.status


def job_count(app: JoobQ) -> int:
    return sum(len(app.store.search_jobs(status=status, limit=1000)) for status in JobStatus)
