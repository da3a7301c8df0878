"""LISTEN/NOTIFY wake-ups against a real PostgreSQL: what is sent, when, and how the listener lives.

"Never arrives" is proven by ordering, not by waiting: PostgreSQL delivers notifications in
commit order, so once a later sentinel notification has arrived, an earlier one never will.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterator

import psycopg
import pytest
from sqlalchemy import create_engine

from joobq_sql.errors import ConfigurationError
from joobq_sql.store.postgres.notifier import Listener, channel_for, libpq_dsn, notify_queues
from joobq_sql.store.postgres.queries import Queries
from tests.conftest import libpq_url
from tests.helpers import wait_until

SCHEMA = "joobq"
CHANNEL = channel_for(SCHEMA)
QUERIES = Queries(SCHEMA)


class Recorder:
    """Callbacks that remember what the listener thread told them."""

    def __init__(self, *, fail_on_wake: bool = False) -> None:
        self.queues: list[str] = []
        self.reconnects = 0
        self._fail_on_wake = fail_on_wake

    def on_wake(self, queue: str) -> None:
        self.queues.append(queue)
        if self._fail_on_wake:
            raise RuntimeError(f"on_wake failed for {queue}")

    def on_reconnect(self) -> None:
        self.reconnects += 1


def send(pg: psycopg.Connection, queues: Collection[str], *, rollback: bool = False) -> None:
    """Notify `queues` in one transaction of their own, committed unless `rollback`."""
    with pg.transaction(force_rollback=rollback), pg.cursor() as cur:
        notify_queues(cur, QUERIES, channel=CHANNEL, queues=queues)


@pytest.fixture
def start_listener(database_url: str) -> Iterator[Callable[[Recorder], Listener]]:
    listeners: list[Listener] = []

    def start(recorder: Recorder) -> Listener:
        listener = Listener(
            libpq_url(database_url),
            channel=CHANNEL,
            on_wake=recorder.on_wake,
            on_reconnect=recorder.on_reconnect,
        )
        listeners.append(listener)
        listener.start()
        assert listener.wait_connected(10), listener.stats
        return listener

    yield start
    for listener in listeners:
        listener.stop()


def test_a_committed_notify_wakes_the_listener_with_the_queue_name(pg, start_listener):
    recorder = Recorder()
    listener = start_listener(recorder)
    send(pg, ["mail"])
    wait_until(lambda: recorder.queues == ["mail"], what="the wake-up for 'mail'")
    assert listener.stats.notifications == 1


def test_a_rolled_back_notify_never_wakes_the_listener(pg, start_listener):
    recorder = Recorder()
    start_listener(recorder)
    send(pg, ["rolled_back"], rollback=True)
    send(pg, ["committed"])
    wait_until(lambda: recorder.queues, what="the committed wake-up")
    assert recorder.queues == ["committed"]


def test_one_statement_notifies_each_distinct_queue_once(pg, start_listener):
    recorder = Recorder()
    start_listener(recorder)
    send(pg, ["a", "a", "b"])
    send(pg, ["sentinel"])
    wait_until(lambda: "sentinel" in recorder.queues, what="the sentinel wake-up")
    assert Counter(recorder.queues) == {"a": 1, "b": 1, "sentinel": 1}


def test_an_empty_collection_sends_nothing(pg, start_listener):
    recorder = Recorder()
    start_listener(recorder)
    send(pg, [])
    send(pg, ["sentinel"])
    wait_until(lambda: recorder.queues, what="the sentinel wake-up")
    assert recorder.queues == ["sentinel"]


def test_the_listener_survives_its_backend_being_terminated(pg, start_listener):
    recorder = Recorder()
    listener = start_listener(recorder)
    old_pid = listener.backend_pid
    assert old_pid is not None
    pg.execute("SELECT pg_terminate_backend(%s)", [old_pid])

    wait_until(lambda: recorder.reconnects == 1, what="on_reconnect after the terminate")
    assert listener.wait_connected(10)
    assert listener.backend_pid not in (None, old_pid)
    assert listener.stats.reconnects == 1
    assert listener.stats.last_error is not None
    send(pg, ["after"])
    wait_until(lambda: recorder.queues == ["after"], what="a wake-up after reconnecting")


def test_stop_returns_within_two_seconds(start_listener):
    listener = start_listener(Recorder())
    started = time.monotonic()
    assert listener.stop() is True
    assert time.monotonic() - started < 2.0
    assert listener.stats.connected is False


def test_an_on_wake_that_raises_does_not_stop_later_wake_ups(pg, start_listener, caplog):
    caplog.set_level(logging.ERROR, logger="joobq_sql.notifier")
    recorder = Recorder(fail_on_wake=True)
    start_listener(recorder)
    send(pg, ["first"])
    send(pg, ["second"])
    wait_until(lambda: recorder.queues == ["first", "second"], what="both wake-ups")
    assert "on_wake failed for first" in caplog.text


def test_a_listener_that_cannot_connect_keeps_retrying_without_raising():
    listener = Listener(
        "host=127.0.0.1 port=1 dbname=nowhere connect_timeout=1",
        channel=CHANNEL,
        on_wake=lambda queue: None,
    )
    listener.start()
    try:
        wait_until(lambda: listener.stats.last_error, what="a recorded connection error")
        assert listener.stats.connected is False
    finally:
        assert listener.stop() is True


def test_the_channel_for_schema_joobq_is_joobq_jobs():
    assert channel_for("joobq") == "joobq_jobs"


def test_a_schema_too_long_for_a_channel_name_is_rejected():
    with pytest.raises(ConfigurationError, match="too long for a NOTIFY channel"):
        channel_for("s" * 60)


def test_libpq_dsn_drops_the_sqlalchemy_driver_and_keeps_the_password():
    url = "postgresql+psycopg://user:secret@db.example:5433/app"
    assert libpq_dsn(url) == "postgresql://user:secret@db.example:5433/app"
    assert libpq_dsn(create_engine(url)) == "postgresql://user:secret@db.example:5433/app"
