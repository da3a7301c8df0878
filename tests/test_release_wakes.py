"""A release that makes jobs runnable now wakes the queue's listeners, as an enqueue does.

A claimer that gives back jobs it did not start (a shutdown, a run that turned out long with
jobs claimed ahead, an unseen claim) puts them back as runnable as they were; idle workers
elsewhere should take them at once, not at their next poll. Every wait polls a condition with a
deadline far below the 30 s poll interval the queues run with here.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest

from joobq_sql import Job, JoobQ, NewJob, PostgresStore
from joobq_sql.store.unrunnable import HandBack
from tests.conftest import libpq_url
from tests.helpers import wait_until
from tests.runtime_support import start

QUEUE = "released"
OTHER = "another-claimer"
#: Far below the queues' 30 s poll: a job taken within it was woken, not polled for.
PICKUP = 10.0


class RwQuick(Job):
    queue = QUEUE

    def perform(self) -> None:
        pass


class RwQuickAsync(Job):
    queue = QUEUE

    async def perform(self) -> None:
        pass


def new_job(job_type: str = "RwQuick", **overrides: Any) -> NewJob:
    values: dict[str, Any] = {"jid": uuid4(), "queue": QUEUE, "job_type": job_type, "args": {}}
    values.update(overrides)
    return NewJob(**values)


def claimed_by_another(store: PostgresStore, job_type: str) -> UUID:
    """A job that another worker claimed and did not start (done before any queue listens)."""
    [jid] = store.enqueue_jobs([new_job(job_type)])
    [record] = store.claim_jobs(QUEUE, OTHER, 1, lease=300)
    assert record.jid == jid
    return jid


def idle_queue(app: JoobQ, job: type[Job], **queue: Any) -> None:
    """Start a queue of `job` and wait until it made its first claim (it found nothing: its
    one job is claimed elsewhere) and LISTENs: from here only a NOTIFY or its poll wakes it."""
    app.queue(QUEUE, workers=1, jobs=[job], **queue)
    worker = start(app)
    runner = worker.runners[QUEUE]
    assert worker.listener is not None
    wait_until(lambda: worker.listener.wait_connected(0.1), what="listener connected")
    wait_until(lambda: runner.counters["claims"] >= 1, what="the queue's first claim")


def test_a_released_job_wakes_an_idle_queue_long_before_its_poll(make_app: Any) -> None:
    app: JoobQ = make_app(poll_interval=30)
    assert isinstance(app.store, PostgresStore)
    jid = claimed_by_another(app.store, "RwQuick")
    idle_queue(app, RwQuick)

    assert app.store.release_jobs(OTHER, [jid]) == [jid]
    wait_until(lambda: app.store.get_job(jid) is None, timeout=PICKUP, what="woken by release")


def test_a_released_job_wakes_an_idle_async_queue_long_before_its_poll(make_app: Any) -> None:
    app: JoobQ = make_app(poll_interval=30)
    assert isinstance(app.store, PostgresStore)
    jid = claimed_by_another(app.store, "RwQuickAsync")
    idle_queue(app, RwQuickAsync, mode="async")

    assert app.store.release_jobs(OTHER, [jid]) == [jid]
    wait_until(lambda: app.store.get_job(jid) is None, timeout=PICKUP, what="woken by release")


class Listening:
    """A LISTEN on the store's channel, read with a deadline."""

    def __init__(self, database_url: str, channel: str) -> None:
        self.conn = psycopg.connect(libpq_url(database_url), autocommit=True)
        self.conn.execute(f'LISTEN "{channel}"')

    def until(self, payload: str) -> list[str]:
        """Every payload received up to and including the first `payload`."""
        seen: list[str] = []
        for notify in self.conn.notifies(timeout=PICKUP):
            seen.append(notify.payload)
            if notify.payload == payload:
                return seen
        raise AssertionError(f"no NOTIFY {payload!r} within {PICKUP}s; got {seen}")

    def close(self) -> None:
        self.conn.close()


@pytest.fixture
def listening(database_url: str) -> Any:
    listener = Listening(database_url, PostgresStore(database_url).channel)
    yield listener
    listener.close()


def marker(store: PostgresStore) -> None:
    """A NOTIFY sent after the statement under test: what came before it came from that."""
    store.enqueue_jobs([new_job(queue="marker")])


def test_a_release_notifies_its_queue_once(pg_store: PostgresStore, listening: Listening) -> None:
    pg_store.enqueue_jobs([new_job(), new_job()])
    listening.until(QUEUE)  # the enqueue's own
    jids = [r.jid for r in pg_store.claim_jobs(QUEUE, OTHER, 2, lease=300)]
    assert sorted(pg_store.release_jobs(OTHER, jids)) == sorted(jids)
    marker(pg_store)
    assert listening.until("marker") == [QUEUE, "marker"]


def test_a_release_of_nothing_or_of_cancelled_jobs_notifies_nobody(
    pg_store: PostgresStore, listening: Listening
) -> None:
    [jid] = pg_store.enqueue_jobs([new_job()])
    listening.until(QUEUE)
    pg_store.claim_jobs(QUEUE, OTHER, 1, lease=300)
    assert pg_store.release_jobs("nobody", [jid]) == []
    pg_store.cancel_jobs([jid])
    assert pg_store.release_jobs(OTHER, [jid]) == [jid]  # to dead 'cancelled': never runnable
    marker(pg_store)
    assert listening.until("marker") == ["marker"]


def test_a_poll_only_store_sends_no_notify_on_release(
    database_url: str, pg_store: PostgresStore, listening: Listening
) -> None:
    quiet = PostgresStore(database_url, notify=False)
    try:
        [jid] = quiet.enqueue_jobs([new_job()])
        quiet.claim_jobs(QUEUE, OTHER, 1, lease=300)
        assert quiet.release_jobs(OTHER, [jid]) == [jid]
    finally:
        quiet.close()
    marker(pg_store)
    assert listening.until("marker") == ["marker"]


def test_a_hand_back_notifies_nobody_its_job_is_due_only_later(
    pg_store: PostgresStore, listening: Listening
) -> None:
    """hand_back_jobs puts a job back with a backoff of at least a second: a NOTIFY would wake
    workers to find nothing to claim."""
    [jid] = pg_store.enqueue_jobs([new_job(job_type="NoSuchJob")])
    listening.until(QUEUE)
    [record] = pg_store.claim_jobs(QUEUE, OTHER, 1, lease=300)
    hand_back = HandBack(
        jid=jid,
        attempt=record.attempt,
        worker_id=OTHER,
        job_type="NoSuchJob",
        reason="no Job class registers job_type 'NoSuchJob'",
        error={"error_type": "unrunnable", "message": "no such job"},
    )
    assert jid in pg_store.hand_back_jobs([hand_back])
    marker(pg_store)
    assert listening.until("marker") == ["marker"]
