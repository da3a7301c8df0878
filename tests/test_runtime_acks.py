"""Acknowledgements and lease renewal under failure (issue 13, defects 1 and 2).

An error message PostgreSQL cannot store (a NUL, a lone surrogate) must be made storable before
it is written; a write the database refuses for a reason tied to its rows must not block the
other acknowledgements; a failing acknowledgement or presence write must never stop the
heartbeat from renewing the leases of the jobs this worker runs.
"""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta
from typing import Any

import psycopg
import pytest

from joobq_sql import Job, JobStatus, NewJob, PostgresStore
from joobq_sql.runtime.acker import Acker
from joobq_sql.runtime.error_details import error_details
from joobq_sql.runtime.heartbeat import Heartbeat
from joobq_sql.store.records import Completion, Failure
from tests.helpers import wait_until
from tests.runtime_support import Recorder, start

log = Recorder()
hold = threading.Event()

#: A value taken from user data: a NUL and a lone surrogate, neither storable in jsonb or text.
BAD_CELL = "acme\x00corp\ud800"


@pytest.fixture(autouse=True)
def _fresh() -> Any:
    log.events.clear()
    hold.clear()
    yield
    hold.set()  # never leave a held job's thread waiting after its test


class AkHeld(Job):
    """Runs until the test lets it go: a job this worker holds while another one fails."""

    def perform(self) -> None:
        log.add(("held-start", self.attempt))
        hold.wait(30)
        log.add(("held-end", self.attempt))


class AkBadMessage(Job):
    retries = 0

    def perform(self) -> None:
        log.add(("bad-start", self.attempt))
        raise ValueError(f"unknown customer {BAD_CELL}")


def _has_unstorable(text: str) -> bool:
    return "\x00" in text or any("\ud800" <= ch <= "\udfff" for ch in text)


def _renewed_past(store: PostgresStore, jid: uuid.UUID, seconds: float) -> Any:
    """The job's record once its lease reaches `seconds` past now, as the database sees it:
    proof that it was renewed after this call (a lease is at most `lease` long)."""
    horizon = store.now() + timedelta(seconds=seconds)

    def renewed() -> Any:
        record = store.get_job(jid)
        assert record is not None and record.status is JobStatus.RUNNING, record
        assert record.attempt == 1, f"the held job was rescued: {record}"
        return record if record.lease_expires_at > horizon else None

    return renewed


def test_an_unstorable_error_message_does_not_wedge_the_worker(make_app: Any) -> None:
    """Defect 1: the failure of a job whose message holds a NUL and a lone surrogate is stored
    (the text made storable), and the other job the worker holds keeps its lease: it runs once."""
    app = make_app(lease=1, heartbeat_interval=0.2)
    app.queue("default", workers=2, jobs=[AkHeld, AkBadMessage])
    held = AkHeld.enqueue()
    worker = start(app)
    wait_until(lambda: ("held-start", 1) in log.snapshot(), what="the held job started")
    bad = AkBadMessage.enqueue()
    dead = wait_until(
        lambda: (r := app.store.get_job(bad)) and r.status is JobStatus.DEAD and r,
        timeout=10,
        what="the failure with an unstorable message stored",
    )
    message = dead.last_error["message"]
    assert not _has_unstorable(message) and "unknown customer acme" in message
    assert not _has_unstorable(dead.last_error["backtrace"])
    assert not _has_unstorable(dead.dead_reason or "")
    # The held job's lease is renewed after the failure was written: 2 leases ahead of now.
    wait_until(_renewed_past(app.store, held, 1.5), timeout=10, what="the lease renewed")
    hold.set()
    wait_until(lambda: app.store.get_job(held) is None, what="the held job completed")
    assert [e for e in log.snapshot() if e[0] == "held-start"] == [("held-start", 1)]
    assert app.stats()["default"].totals["rescued"] == 0
    wait_until(lambda: not worker.acker.pending_jids(), what="every ack written")


def test_error_details_are_storable_at_the_source() -> None:
    """Message, traceback, cause, class name and keys: no NUL, no lone surrogate."""
    weird = type("WeirdError", (Exception,), {})
    weird.__module__ = f"plugin{BAD_CELL}"  # a class name holds no NUL, its module may
    try:
        try:
            raise KeyError(f"k{BAD_CELL}")
        except KeyError as inner:
            raise weird(f"outer {BAD_CELL}") from inner
    except Exception as exc:
        details = error_details(
            exc, jid=uuid.uuid4(), queue="q", job_type="T", attempt=1, worker_id="w"
        )
    for key, value in details.items():
        assert not _has_unstorable(key)
        if isinstance(value, str):
            assert not _has_unstorable(value), (key, value)
    assert details["message"].startswith("outer acme")


def test_the_store_makes_a_callers_error_details_storable(pg_store: PostgresStore) -> None:
    """The seed's mark_as_failed takes the caller's dict: keys, nested values and the dead
    reason are made storable by the store itself, nothing is refused."""
    jid = uuid.uuid4()
    pg_store.enqueue_jobs([NewJob(jid=jid, queue="q", job_type="T", args={}, max_retries=0)])
    (record,) = pg_store.claim_jobs("q", "w1", 1)
    pg_store.mark_as_failed(
        record.to_json(),
        {"message": BAD_CELL, f"key{BAD_CELL}": {"nested": [BAD_CELL]}, "n": 1},
    )
    stored = pg_store.get_job(jid)
    assert stored is not None and stored.status is JobStatus.DEAD
    assert not _has_unstorable(repr(stored.last_error)), stored.last_error
    assert stored.last_error["message"].startswith("acme")
    assert stored.last_error["n"] == 1

    other = uuid.uuid4()
    pg_store.enqueue_jobs([NewJob(jid=other, queue="q", job_type="T", args={})])
    (claimed,) = pg_store.claim_jobs("q", "w1", 1)
    failure = Failure(other, claimed.attempt, "w1", {"message": "x"}, None, f"why {BAD_CELL}")
    assert pg_store.fail_jobs([failure]) == {other: JobStatus.DEAD}
    reason = pg_store.get_job(other).dead_reason  # type: ignore[union-attr]
    assert reason is not None and reason.startswith("why acme") and not _has_unstorable(reason)


class _RefusesPoison:
    """The store, except that a fail_jobs batch holding an error marked "poison" is refused as
    PostgreSQL refuses a bad value (a DataError), like a row it cannot store."""

    def __init__(self, store: PostgresStore) -> None:
        self.store = store
        self.refused = 0

    def complete_jobs(self, completions: Any) -> Any:
        return self.store.complete_jobs(completions)

    def fail_jobs(self, failures: Any, *, dead_letter_ttl: float | None = None) -> Any:
        if any(f.error.get("poison") for f in failures):
            self.refused += 1
            raise psycopg.errors.InvalidTextRepresentation("invalid input syntax for type json")
        return self.store.fail_jobs(failures, dead_letter_ttl=dead_letter_ttl)


def _claimed(store: PostgresStore, count: int) -> list[Any]:
    jobs = [NewJob(jid=uuid.uuid4(), queue="q", job_type="T", args={}) for _ in range(count)]
    store.enqueue_jobs(jobs)
    return store.claim_jobs("q", "w1", count)


def test_a_row_the_database_refuses_is_stored_with_a_fallback_error(
    pg_store: PostgresStore,
) -> None:
    """Defect 1: a deterministic refusal (DataError) splits the batch: every other completion
    and failure is written, and the refused failure is stored with a fallback error."""
    records = _claimed(pg_store, 6)
    poison, *fine_failures = records[:3]
    completions = records[3:]
    store = _RefusesPoison(pg_store)
    acker = Acker(store, dead_letter_ttl=60.0)  # type: ignore[arg-type]
    for record in completions:
        acker.complete(record.completion)
    acker.fail(Failure(poison.jid, poison.attempt, "w1", {"poison": True, "message": "m"}, None))
    for record in fine_failures:
        acker.fail(Failure(record.jid, record.attempt, "w1", {"message": "fine"}, None))
    acker.start()
    try:
        assert acker.flush(10), "the acknowledgements were not all written"
    finally:
        acker.stop()
    assert store.refused >= 1
    for record in completions:
        assert pg_store.get_job(record.jid) is None
    for record in fine_failures:
        stored = pg_store.get_job(record.jid)
        assert stored is not None and stored.status is JobStatus.DEAD
        assert stored.last_error["message"] == "fine"
    stored = pg_store.get_job(poison.jid)
    assert stored is not None and stored.status is JobStatus.DEAD
    assert "could not be stored" in stored.last_error["message"]
    assert "InvalidTextRepresentation" in stored.last_error["message"]


class _DatabaseAway:
    """The store, except that fail_jobs fails as if the connection were lost until `back`."""

    def __init__(self, store: PostgresStore) -> None:
        self.store = store
        self.back = threading.Event()
        self.attempts = 0

    def complete_jobs(self, completions: Any) -> Any:
        return self.store.complete_jobs(completions)

    def fail_jobs(self, failures: Any, *, dead_letter_ttl: float | None = None) -> Any:
        if not self.back.is_set():
            self.attempts += 1
            raise psycopg.OperationalError("server closed the connection unexpectedly")
        return self.store.fail_jobs(failures, dead_letter_ttl=dead_letter_ttl)


def test_the_acknowledger_does_not_hold_the_heartbeats_lock_while_it_retries(
    pg_store: PostgresStore,
) -> None:
    """Defect 1: while a write fails with a lost connection, the acknowledger keeps the batch
    and retries it, but between attempts the heartbeat can renew (Acker.quiet is free)."""
    (record,) = _claimed(pg_store, 1)
    store = _DatabaseAway(pg_store)
    acker = Acker(store, dead_letter_ttl=60.0)  # type: ignore[arg-type]
    acker.start()
    try:
        acker.fail(Failure(record.jid, record.attempt, "w1", {"message": "m"}, 0.0))
        wait_until(lambda: store.attempts >= 3, what="the write retried")
        entered = threading.Event()

        def renew() -> None:
            with acker.quiet():
                entered.set()

        threading.Thread(target=renew, daemon=True).start()
        assert entered.wait(10), "the heartbeat's lock stayed held across the retry wait"
        assert acker.pending_jids() == {record.jid}  # kept, not dropped
        store.back.set()
        assert acker.flush(10)
    finally:
        store.back.set()
        acker.stop()
    stored = pg_store.get_job(record.jid)
    assert stored is not None and stored.status is JobStatus.RETRYING


class _FailsAcksUntil(PostgresStore):
    """A PostgresStore whose fail_jobs loses its connection until `back` is set."""

    back: threading.Event

    def fail_jobs(self, failures: Any, *, dead_letter_ttl: float | None = None) -> Any:
        if not self.back.is_set():
            raise psycopg.OperationalError("server closed the connection unexpectedly")
        return super().fail_jobs(failures, dead_letter_ttl=dead_letter_ttl)


def test_leases_are_renewed_while_acknowledgements_fail(make_app: Any, database_url: str) -> None:
    """Defect 1: a worker whose failure acknowledgements keep failing still renews the leases
    of the jobs it runs; once the database takes them, the failure is written."""
    store = _FailsAcksUntil(database_url, lease=1)
    store.back = threading.Event()
    app = make_app(store=store, lease=1, heartbeat_interval=0.2)
    app.queue("default", workers=2, jobs=[AkHeld, AkBadMessage])
    held = AkHeld.enqueue()
    start(app)
    wait_until(lambda: ("held-start", 1) in log.snapshot(), what="the held job started")
    bad = AkBadMessage.enqueue()
    wait_until(lambda: ("bad-start", 1) in log.snapshot(), what="the failing job ran")
    wait_until(_renewed_past(store, held, 1.5), timeout=10, what="the lease renewed")
    bad_record = store.get_job(bad)
    assert bad_record is not None and bad_record.status is JobStatus.RUNNING
    assert bad_record.attempt == 1  # its own lease is renewed too while its ack is pending
    store.back.set()
    wait_until(
        lambda: (r := store.get_job(bad)) and r.status is JobStatus.DEAD,
        what="the failure written once the database is back",
    )
    hold.set()
    wait_until(lambda: store.get_job(held) is None, what="the held job completed")
    assert [e for e in log.snapshot() if e[0] == "held-start"] == [("held-start", 1)]


class _NoPresenceGrant(PostgresStore):
    """A PostgresStore whose role may not write the workers table."""

    def worker_seen(self, worker_id: str, **kwargs: Any) -> None:
        raise psycopg.errors.InsufficientPrivilege("permission denied for table workers")


def test_a_failing_presence_write_does_not_stop_lease_renewal(
    make_app: Any, database_url: str
) -> None:
    """Defect 2: presence is best-effort: the leases are renewed, the job runs once."""
    store = _NoPresenceGrant(database_url, lease=1)
    app = make_app(store=store, lease=1, heartbeat_interval=0.2)
    app.queue("default", workers=1, jobs=[AkHeld])
    held = AkHeld.enqueue()
    worker = start(app)
    wait_until(lambda: ("held-start", 1) in log.snapshot(), what="the held job started")
    wait_until(_renewed_past(store, held, 1.5), timeout=10, what="the lease renewed")
    hold.set()
    wait_until(lambda: store.get_job(held) is None, what="the held job completed")
    assert [e for e in log.snapshot() if e[0] == "held-start"] == [("held-start", 1)]
    assert worker.heartbeat.beats > 0


def test_a_beat_renews_even_when_presence_fails(pg_store: PostgresStore) -> None:
    (record,) = _claimed(pg_store, 1)
    renewed: list[set[uuid.UUID]] = []

    def presence() -> None:
        raise psycopg.errors.InsufficientPrivilege("permission denied for table workers")

    class Renewals:
        def renew_leases(self, worker_id: str, jids: Any, *, lease: float | None = None) -> Any:
            kept = pg_store.renew_leases(worker_id, jids, lease=lease)
            renewed.append(kept)
            return kept

    heartbeat = Heartbeat(
        Renewals(),  # type: ignore[arg-type]
        worker_id="w1",
        lease=30.0,
        interval=3600.0,  # beats only when called here
        held_jids=lambda: {record.jid},
        presence=presence,
    )
    heartbeat.beat()  # presence fails: logged, not raised, and the renewal still happens
    assert renewed == [{record.jid}]
    assert pg_store.complete_jobs([Completion(record.jid, record.attempt, "w1")]) == [record.jid]
