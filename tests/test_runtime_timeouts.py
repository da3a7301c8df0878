"""Timeouts never make two runs of one job overlap (issue 13, defect 7).

At its deadline a run is stopped (JobTimeout raised in its thread, its task cancelled), but its
failure is reported, and so its retry made claimable, only once that thread or task has really
ended; until then its lease is renewed. JobTimeout is not an Exception, so `except Exception`
in a job does not swallow it. Leases here are 1 s, renewed every 0.2 s, with rescue every
0.2 s: a renewal that stopped would show within a second or two.
"""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import timedelta
from typing import Any
from uuid import UUID

import pytest

from joobq_sql import Job, JobStatus, NewJob, PostgresStore
from joobq_sql.runtime.timeouts import JobTimeout
from tests.helpers import wait_until
from tests.runtime_support import Recorder, start

log = Recorder()
release = threading.Event()


@pytest.fixture(autouse=True)
def _fresh() -> Any:
    log.events.clear()
    release.clear()
    yield
    release.set()  # no stuck job thread outlives its test


def test_job_timeout_is_not_an_exception() -> None:
    assert issubclass(JobTimeout, BaseException)
    assert not issubclass(JobTimeout, Exception)


class ToSwallower(Job):
    """Retries its work on any Exception: a common pattern that must not swallow a timeout."""

    timeout = timedelta(seconds=0.3)
    retries = 0

    def perform(self) -> None:
        log.add(("start", self.attempt))
        try:
            while not release.is_set():
                try:
                    time.sleep(0.01)
                except Exception as exc:
                    log.add(("swallowed", type(exc).__name__))
        except BaseException as exc:
            log.add(("escaped", type(exc).__name__))
            raise


def test_except_exception_in_a_job_does_not_swallow_job_timeout(make_app: Any) -> None:
    app = make_app()
    app.queue("default", workers=1, jobs=[ToSwallower])
    jid = ToSwallower.enqueue()
    start(app)
    wait_until(lambda: ("escaped", "JobTimeout") in log.snapshot(), what="the timeout escaped")
    assert not [e for e in log.snapshot() if e[0] == "swallowed"]
    record = wait_until(
        lambda: (r := app.store.get_job(jid)) and r.status is JobStatus.DEAD and r,
        what="the timed-out job dead",
    )
    assert record.last_error["error_class"].endswith("JobTimeout")


class _Retried(Job):
    timeout = timedelta(seconds=0.3)
    retries = 1

    @classmethod
    def backoff(cls, attempt: int) -> float:
        return 0.0  # the retry is due at once: only the runtime can keep it from starting


class ToBlocked(_Retried):
    """Attempt 1 blocks in one C call (an Event wait) past its timeout, until the test lets
    it go; JobTimeout reaches it only then."""

    def perform(self) -> None:
        log.add(("start", self.attempt))
        try:
            if self.attempt == 1:
                release.wait(30)
        finally:
            log.add(("end", self.attempt))


class ToQuick(Job):
    def perform(self) -> None:
        log.add(("quick", self.attempt))


def _held_and_renewed(store: PostgresStore, jid: UUID) -> None:
    """Wait until the job's lease reaches 1.5 s past now (so it was renewed after this call,
    a lease being 1 s), checking all along that attempt 1 still holds it and attempt 2 has
    not started."""
    horizon = store.now() + timedelta(seconds=1.5)

    def renewed() -> bool:
        assert ("start", 2) not in log.snapshot(), "the retry ran beside the timed-out run"
        record = store.get_job(jid)
        assert record is not None, "the job is gone"
        assert (record.status, record.attempt) == (JobStatus.RUNNING, 1), record
        return record.lease_expires_at > horizon

    wait_until(renewed, timeout=10, what="the timed-out run's lease renewed")


def _retried_after_the_first_run(app: Any, jid: UUID) -> None:
    release.set()
    wait_until(lambda: app.store.get_job(jid) is None, timeout=15, what="the retry completed")
    events = [e for e in log.snapshot() if e[0] in ("start", "end")]
    assert events.index(("end", 1)) < events.index(("start", 2)), events
    assert events.count(("start", 1)) == 1 and events.count(("start", 2)) == 1, events


def test_a_sync_job_stuck_past_its_timeout_is_not_retried_until_its_thread_ends(
    make_app: Any,
) -> None:
    app = make_app(lease=1, heartbeat_interval=0.2)
    app.queue("default", workers=1, jobs=[ToBlocked, ToQuick])
    jid = ToBlocked.enqueue()
    worker = start(app)
    runner = worker.runners["default"]
    wait_until(lambda: ("start", 1) in log.snapshot(), what="attempt 1 started")
    wait_until(lambda: runner.counters["timed_out"] == 1, what="attempt 1 timed out")
    quick = ToQuick.enqueue()  # the slot has a fresh thread: the queue keeps working
    wait_until(lambda: app.store.get_job(quick) is None, what="another job ran meanwhile")
    _held_and_renewed(app.store, jid)
    _retried_after_the_first_run(app, jid)
    last = app.store.get_job(jid)
    assert last is None
    assert app.stats()["default"].totals["rescued"] == 0


class ToStubborn(_Retried):
    """Attempt 1 catches even BaseException and goes on until the test lets it go: nothing
    can stop its thread, so its retry must wait for it."""

    def perform(self) -> None:
        log.add(("start", self.attempt))
        try:
            while self.attempt == 1 and not release.is_set():
                try:
                    time.sleep(0.01)
                except BaseException as exc:
                    log.add(("caught", type(exc).__name__))
        finally:
            log.add(("end", self.attempt))


class ToSlowToCancel(_Retried):
    """An async attempt 1 that, once cancelled at its deadline, takes until the test lets it
    go to clean up: its task has not ended before then."""

    async def perform(self) -> None:
        log.add(("start", self.attempt))
        try:
            if self.attempt == 1:
                try:
                    await asyncio.sleep(30)
                except asyncio.CancelledError:
                    log.add(("caught", "CancelledError"))
                    while not release.is_set():
                        await asyncio.sleep(0.01)
                    raise
        finally:
            log.add(("end", self.attempt))


@pytest.mark.parametrize(
    ("job_class", "mode", "caught"),
    [
        (ToStubborn, "threads", "JobTimeout"),
        (ToStubborn, "async", "JobTimeout"),
        (ToSlowToCancel, "threads", "CancelledError"),
        (ToSlowToCancel, "async", "CancelledError"),
    ],
)
def test_a_timed_out_run_is_not_retried_until_it_has_ended(
    make_app: Any, job_class: type[Job], mode: str, caught: str
) -> None:
    """Whatever the run is (a sync or async perform, in a threaded or an async queue), its
    failure is not reported, so its retry not made claimable, before it has ended. (An async
    queue accepts only async job classes, but a sync job enqueued onto it still runs, in a
    thread.)"""
    app = make_app(lease=1, heartbeat_interval=0.2)
    app.queue(
        "default", workers=1, jobs=[ToSlowToCancel if mode == "async" else job_class], mode=mode
    )
    (jid,) = app.store.enqueue_jobs([NewJob.from_job(job_class(), queue="default")])
    start(app)
    wait_until(lambda: ("caught", caught) in log.snapshot(), what="the deadline reached attempt 1")
    _held_and_renewed(app.store, jid)
    _retried_after_the_first_run(app, jid)
    assert app.stats()["default"].totals["rescued"] == 0
