"""Nothing claimed is dropped, and a job this worker cannot run is handed back (issue 13,
defects 3 and 12). Against a real PostgreSQL; faults are injected by wrapping one store method
of the worker's store so that it raises psycopg.OperationalError once, before the real call
(the statement never ran) or after it (it committed, and the worker never heard).

Every job here allows no retry (retries = 0): each run is its last attempt, so a claimed job
that is forgotten and rescued when its lease expires goes straight to dead, and a run that is
charged where it should not be would show in attempt - redrive_attempt.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any
from uuid import UUID

import psycopg
import pytest

from joobq_sql import Job, JobStatus, NewJob, PostgresStore
from joobq_sql._uuid7 import uuid7
from joobq_sql.store.postgres.async_store import AsyncPostgresStore, AsyncStore
from tests.helpers import wait_until
from tests.runtime_support import Recorder, start

QUEUE = "claims"
ASYNC_QUEUE = "claims_async"
ran = Recorder()


@pytest.fixture(autouse=True)
def _fresh_log() -> None:
    ran.events.clear()


class ClaimsJob(Job):
    queue = QUEUE
    retries = 0
    n: int = 0

    def perform(self) -> None:
        ran.add((self.jid, self.attempt))


class ClaimsAsyncJob(Job):
    queue = ASYNC_QUEUE
    retries = 0
    n: int = 0

    async def perform(self) -> None:
        ran.add((self.jid, self.attempt))


class OneFault:
    """Makes the first call of any of the wrapped methods raise OperationalError, once:
    `before` the real call, or `after` it returned (its transaction committed)."""

    def __init__(self, when: str) -> None:
        assert when in ("before", "after")
        self.when = when
        self.fired: list[str] = []
        self._lock = threading.Lock()

    def _fire(self, name: str) -> bool:
        with self._lock:
            if self.fired:
                return False
            self.fired.append(name)
            return True

    def _error(self, name: str) -> psycopg.OperationalError:
        return psycopg.OperationalError(f"injected: connection lost {self.when} {name}")

    def wrap(self, name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        def faulty(*args: Any, **kwargs: Any) -> Any:
            if self.when == "before" and self._fire(name):
                raise self._error(name)
            result = method(*args, **kwargs)
            if self.when == "after" and self._fire(name):
                raise self._error(name)
            return result

        return faulty

    def wrap_async(self, name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        async def faulty(*args: Any, **kwargs: Any) -> Any:
            if self.when == "before" and self._fire(name):
                raise self._error(name)
            result = await method(*args, **kwargs)
            if self.when == "after" and self._fire(name):
                raise self._error(name)
            return result

        return faulty


def inject(store: PostgresStore, fault: OneFault, *methods: str) -> None:
    """Wrap `methods` of this store instance (calls through self.<method> see the wrapper)."""
    for name in methods:
        original = getattr(store, name, None)
        if original is not None:
            setattr(store, name, fault.wrap(name, original))


def inject_async(monkeypatch: pytest.MonkeyPatch, fault: OneFault, *methods: str) -> None:
    """Wrap `methods` of every AsyncPostgresStore (the async runner builds its own)."""
    for name in methods:
        original = getattr(AsyncPostgresStore, name, None) or getattr(AsyncStore, name, None)
        if original is not None:
            monkeypatch.setattr(AsyncPostgresStore, name, fault.wrap_async(name, original))


def unknown_job(job_type: str, queue: str = QUEUE) -> NewJob:
    """A row of a job type no Job class of this process registers (a newer deploy's)."""
    return NewJob(jid=uuid7(), queue=queue, job_type=job_type, args={"n": 1}, max_retries=0)


def fresh_type() -> str:
    return f"ClaimsFromANewerDeploy{uuid.uuid4().hex[:8]}"


def running(store: PostgresStore, queue: str = QUEUE) -> int:
    return store.count_jobs(queue, JobStatus.RUNNING)


def each_ran_once(jids: Iterable[UUID]) -> bool:
    counts = Counter(jid for jid, _attempt in ran.snapshot())
    return all(counts[jid] == 1 for jid in jids) and set(counts) == set(jids)


def handed_back(store: PostgresStore, jid: UUID) -> Any:
    record = store.get_job(jid)
    if record is None or record.status is JobStatus.RUNNING or record.attempt == 0:
        return None
    return record


# -- defect 3: a claimed batch is dropped when anything fails after the claim ------------------


def test_a_failed_hand_back_of_unrunnable_rows_loses_none_of_the_batch(
    make_app, database_url
) -> None:
    store = PostgresStore(database_url, lease=1)
    fault = OneFault("before")
    # Today's dead-lettering statement (fail_jobs) or the hand-back: whichever comes first.
    inject(store, fault, "fail_jobs", "hand_back_jobs")
    app = make_app(store=store, lease=1)
    app.queue(QUEUE, workers=4, jobs=[ClaimsJob])
    unknown = store.enqueue_jobs([unknown_job(fresh_type())])[0]
    good = store.enqueue_jobs([NewJob.from_job(ClaimsJob(n=i), max_retries=0) for i in range(3)])
    start(app)

    wait_until(lambda: each_ran_once(good) and len(ran) == 3, what="the batch's runnable jobs")
    wait_until(lambda: running(store) == 0, what="no claimed job left running")
    assert fault.fired
    assert sorted(attempt for _jid, attempt in ran.snapshot()) == [1, 1, 1]
    assert [store.get_job(jid) for jid in good] == [None, None, None]  # completed
    record = store.get_job(unknown)
    assert record is not None and record.status is JobStatus.SCHEDULED, record
    assert record.attempt - record.redrive_attempt == 0  # the hand-back charged nothing
    assert app.stats()[QUEUE].totals.get("rescued", 0) == 0


def test_a_lost_claim_commit_loses_no_job_and_charges_none(make_app, database_url) -> None:
    store = PostgresStore(database_url, lease=1, keep_completed=3600)
    fault = OneFault("after")
    inject(store, fault, "claim_jobs")
    app = make_app(store=store, lease=1)
    app.queue(QUEUE, workers=4, jobs=[ClaimsJob])
    good = store.enqueue_jobs([NewJob.from_job(ClaimsJob(n=i), max_retries=0) for i in range(3)])
    start(app)

    wait_until(lambda: fault.fired, what="the claim whose commit is lost")
    wait_until(lambda: len(ran) == 3, what="the jobs of the lost claim to run")
    wait_until(lambda: running(store) == 0, what="no claimed job left running")
    assert each_ran_once(good)
    for jid in good:
        record = store.get_job(jid)
        assert record is not None and record.status is JobStatus.COMPLETED, record
        assert record.errors == []  # never rescued, never failed
        assert record.attempt - record.redrive_attempt == 1  # only the real run was charged
    assert app.stats()[QUEUE].totals.get("rescued", 0) == 0


def test_async_runner_keeps_its_batch_when_the_hand_back_fails(make_app, monkeypatch) -> None:
    fault = OneFault("before")
    inject_async(monkeypatch, fault, "screen_claimed", "hand_back_jobs")
    app = make_app(lease=1)
    app.queue(ASYNC_QUEUE, workers=4, jobs=[ClaimsAsyncJob], mode="async")
    store = app.store
    unknown = store.enqueue_jobs([unknown_job(fresh_type(), ASYNC_QUEUE)])[0]
    good = store.enqueue_jobs(
        [NewJob.from_job(ClaimsAsyncJob(n=i), max_retries=0) for i in range(3)]
    )
    start(app)

    wait_until(lambda: each_ran_once(good) and len(ran) == 3, what="the batch's runnable jobs")
    wait_until(lambda: running(store, ASYNC_QUEUE) == 0, what="no claimed job left running")
    assert fault.fired
    record = store.get_job(unknown)
    assert record is not None and record.status is JobStatus.SCHEDULED, record


def test_async_runner_hands_back_a_lost_claim(make_app, monkeypatch) -> None:
    fault = OneFault("after")
    inject_async(monkeypatch, fault, "claim_jobs")
    app = make_app(lease=1, keep_completed=3600)
    app.queue(ASYNC_QUEUE, workers=4, jobs=[ClaimsAsyncJob], mode="async")
    store = app.store
    good = store.enqueue_jobs(
        [NewJob.from_job(ClaimsAsyncJob(n=i), max_retries=0) for i in range(3)]
    )
    start(app)

    wait_until(lambda: fault.fired, what="the claim whose commit is lost")
    wait_until(lambda: len(ran) == 3, what="the jobs of the lost claim to run")
    # Ran is not yet acknowledged: wait for the acknowledgements before reading the rows.
    wait_until(lambda: running(store, ASYNC_QUEUE) == 0, what="no claimed job left running")
    assert each_ran_once(good)
    for jid in good:
        record = store.get_job(jid)
        assert record is not None and record.status is JobStatus.COMPLETED, record
        assert record.errors == []
        assert record.attempt - record.redrive_attempt == 1


# -- defect 12: a job type this worker does not know dies at once ------------------------------


def test_an_unknown_job_type_is_handed_back_uncharged_with_a_warning(make_app, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="joobq_sql.worker")
    app = make_app()
    app.queue(QUEUE, workers=2, jobs=[ClaimsJob])
    job_type = fresh_type()
    jid = app.store.enqueue_jobs([unknown_job(job_type)])[0]
    start(app)

    record = wait_until(lambda: handed_back(app.store, jid), what="the job to be handed back")
    assert record.status is JobStatus.SCHEDULED, record  # waiting for its backoff
    assert record.attempt == 1 and record.redrive_attempt == 1  # claimed once, not charged
    assert record.run_at > app.store.now()
    assert record.worker_id is None and record.dead_reason is None
    assert record.last_error["error_type"] == "unrunnable"
    assert job_type in record.last_error["message"]
    warning = wait_until(
        lambda: [r for r in caplog.records if job_type in r.getMessage()],
        what="a warning naming the job type",
    )[0]
    assert warning.levelno == logging.WARNING and str(jid) in warning.getMessage()


def test_a_handed_back_job_runs_once_a_worker_that_knows_its_type_claims_it(make_app) -> None:
    old = make_app()
    old.queue(QUEUE, workers=2, jobs=[ClaimsJob])
    job_type = fresh_type()
    jid = old.store.enqueue_jobs([unknown_job(job_type)])[0]
    old_worker = start(old)
    wait_until(lambda: handed_back(old.store, jid), what="the old worker to hand it back")
    old_worker.stop(grace=2)

    new_type = job_type

    class ClaimsNewDeploy(Job):  # the new deploy's class for the job type
        job_type = new_type
        queue = QUEUE
        retries = 0
        n: int

        def perform(self) -> None:
            ran.add((self.jid, self.attempt))

    new = make_app()
    new.queue(QUEUE, workers=2, jobs=[ClaimsNewDeploy])
    start(new)
    wait_until(lambda: new.store.get_job(jid) is None, what="the new worker to run it")
    assert ran.snapshot() == [(jid, 2)]  # the attempt number only grows


def test_an_unrunnable_job_goes_dead_with_a_clear_reason_after_the_grace(make_app) -> None:
    app = make_app(unrunnable_grace=0.3)
    app.queue(QUEUE, workers=2, jobs=[ClaimsJob])
    job_type = fresh_type()
    jid = app.store.enqueue_jobs([unknown_job(job_type)])[0]
    start(app)

    record = wait_until(
        lambda: (r := app.store.get_job(jid)) is not None and r.status is JobStatus.DEAD and r,
        what="the job to go dead after the grace",
    )
    assert record.dead_reason.startswith("unrunnable for longer than 0.3s: "), record.dead_reason
    assert repr(job_type) in record.dead_reason
    assert record.attempt >= 2  # handed back at least once before it went dead
    assert record.attempt - record.redrive_attempt == 0  # no run was charged
    assert record.last_error["error_type"] == "unrunnable"


gate = threading.Event()


class ClaimsHeld(Job):
    queue = QUEUE
    retries = 0

    def perform(self) -> None:
        ran.add((self.jid, self.attempt))
        gate.wait(10)


def test_releasing_a_lost_claim_keeps_the_jobs_this_worker_runs(make_app, database_url) -> None:
    gate.clear()
    store = PostgresStore(database_url, lease=1, keep_completed=3600)
    app = make_app(store=store, lease=1)
    app.queue(QUEUE, workers=3, jobs=[ClaimsJob, ClaimsHeld])
    held = store.enqueue_jobs([NewJob.from_job(ClaimsHeld(), max_retries=0)])[0]
    start(app)
    wait_until(lambda: len(ran) == 1, what="the held job to start")
    fault = OneFault("after")
    inject(store, fault, "claim_jobs")
    lost = store.enqueue_jobs([NewJob.from_job(ClaimsJob(n=1), max_retries=0)])[0]
    wait_until(lambda: fault.fired and (lost, 2) in ran.snapshot(), what="the lost claim's job")
    gate.set()
    wait_until(lambda: running(store) == 0, what="every job finished")
    assert each_ran_once([held, lost])
    record = store.get_job(held)
    assert record is not None and record.status is JobStatus.COMPLETED, record
    assert (record.attempt, record.redrive_attempt, record.errors) == (1, 0, [])


def test_the_warning_is_rate_limited_per_job_type(caplog) -> None:
    from joobq_sql.runtime.unrunnable_log import UnrunnableWarnings
    from joobq_sql.store.unrunnable import HandBack

    now = [0.0]
    logger = logging.getLogger("joobq_sql.test_claims")
    warnings = UnrunnableWarnings(logger, queue=QUEUE, grace=3600, clock=lambda: now[0])

    def hand_back(job_type: str) -> HandBack:
        return HandBack(uuid7(), 1, "w", job_type, f"no Job class registers {job_type!r}", {})

    caplog.set_level(logging.WARNING, logger="joobq_sql.test_claims")
    warnings.report([hand_back("A"), hand_back("A"), hand_back("B")])
    now[0] = 30.0
    warnings.report([hand_back("A")])
    now[0] = 61.0
    last = hand_back("A")
    warnings.report([last])
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3  # A, B, then A again a minute later
    assert "'A'" in lines[0] and "'B'" in lines[1] and "for 1h" in lines[0]
    assert str(last.jid) in lines[2] and "2 more of this type" in lines[2]


# -- a claim that could not even connect claimed nothing, so releases nothing -----------------


class RefuseClaimConnections:
    """Makes the next `count` connections that claim_jobs asks the pool for fail as a real
    refused connection does (psycopg's OperationalError from connecting to a closed port);
    every other connection, and every other method's, is real. Records the release_jobs calls
    that release an unseen claim (those given `keep`)."""

    def __init__(self, store: PostgresStore, count: int) -> None:
        self.left = count
        self.unseen_releases: list[Any] = []
        self._claiming = threading.local()
        engine = store._db.engine
        real_connection = engine.raw_connection
        real_claim = store.claim_jobs
        real_release = store.release_jobs

        def raw_connection() -> Any:
            if getattr(self._claiming, "on", False) and self.left > 0:
                self.left -= 1
                psycopg.connect("host=127.0.0.1 port=1 connect_timeout=5")  # raises
            return real_connection()

        def claim_jobs(*args: Any, **kwargs: Any) -> Any:
            self._claiming.on = True
            try:
                return real_claim(*args, **kwargs)
            finally:
                self._claiming.on = False

        def release_jobs(*args: Any, **kwargs: Any) -> Any:
            if "keep" in kwargs:
                self.unseen_releases.append(kwargs["keep"])
            return real_release(*args, **kwargs)

        engine.raw_connection = raw_connection  # type: ignore[method-assign]
        store.claim_jobs = claim_jobs  # type: ignore[method-assign]
        store.release_jobs = release_jobs  # type: ignore[method-assign]


def test_a_claim_refused_a_connection_releases_nothing(make_app, database_url) -> None:
    store = PostgresStore(database_url, lease=1)
    refusals = RefuseClaimConnections(store, count=3)
    app = make_app(store=store, lease=1)
    app.queue(QUEUE, workers=2, jobs=[ClaimsJob])
    good = store.enqueue_jobs([NewJob.from_job(ClaimsJob(n=i), max_retries=0) for i in range(3)])
    start(app)

    wait_until(lambda: refusals.left == 0, what="three refused claim connections")
    wait_until(lambda: each_ran_once(good) and len(ran) == 3, what="the jobs to run once")
    assert refusals.unseen_releases == []  # nothing was sent, so nothing to release
