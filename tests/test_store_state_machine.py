"""The single-location invariant, checked by a hypothesis state machine.

Random sequences of Store operations run against PostgresStore and against MemoryStore, the
model. After every step both stores must agree on every job's state, and each jid must be in
exactly one state: the per-state counts add up to the number of jobs that exist.
"""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID, uuid4

import psycopg
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, multiple, rule

from joobq_sql import (
    Completion,
    DuplicateJobError,
    Failure,
    Job,
    JobStatus,
    MemoryStore,
    NewJob,
    PostgresStore,
)
from joobq_sql.store.unrunnable import HandBack
from tests.conftest import libpq_url

QUEUES = ("alpha", "beta")
WORKERS = ("w1", "w2")


class MachineJob(Job):
    n: int

    def perform(self) -> None:
        pass


def _status_map(store, jids) -> dict[UUID, JobStatus | None]:
    out = {}
    for jid in jids:
        record = store.get_job(jid)
        out[jid] = None if record is None else record.status
    return out


def _run_state_map(store, jids) -> dict[UUID, tuple | None]:
    """What the fencing, the retry budget and cancels depend on, per job."""
    out = {}
    for jid in jids:
        r = store.get_job(jid)
        out[jid] = (
            None
            if r is None
            else (
                r.status,
                r.attempt,
                r.redrive_attempt,
                r.started,
                r.dead_reason,
                r.cancel_requested_at is not None,
            )
        )
    return out


@pytest.mark.slow
def test_postgres_store_behaves_like_the_memory_model(database_url: str) -> None:
    postgres = PostgresStore(database_url)
    dsn = libpq_url(database_url)

    class StoreMachine(RuleBasedStateMachine):
        jids = Bundle("jids")

        def __init__(self) -> None:
            super().__init__()
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute("TRUNCATE joobq.jobs, joobq.queue_counters")
            self.real = postgres
            self.model = MemoryStore()
            self.known: set[UUID] = set()
            self.claims: dict[UUID, tuple[int, str]] = {}

        def both(self, method: str, *args, **kwargs):
            """Call `method` on both stores: they must return alike, or raise alike."""
            outcomes = []
            for store in (self.real, self.model):
                try:
                    outcomes.append(("ok", getattr(store, method)(*args, **kwargs)))
                except DuplicateJobError as exc:
                    outcomes.append(("raised", type(exc)))
            (real_kind, real), (model_kind, model) = outcomes
            assert real_kind == model_kind, (method, outcomes)
            return (real, model) if real_kind == "ok" else (None, None)

        @rule(
            target=jids,
            queue=st.sampled_from(QUEUES),
            priority=st.integers(0, 2),
            later=st.booleans(),
            max_retries=st.integers(0, 2),
            count=st.integers(1, 3),
        )
        def enqueue(self, queue, priority, later, max_retries, count):
            jobs = [
                NewJob(
                    jid=uuid4(),
                    queue=queue,
                    job_type="MachineJob",
                    args={"n": i},
                    priority=priority,
                    max_retries=max_retries,
                    delay=3600 if later else 0,
                )
                for i in range(count)
            ]
            real, model = self.both("enqueue_jobs", jobs)
            assert real == model
            self.known.update(real)
            return real[0]

        @rule(
            target=jids,
            queue=st.sampled_from(QUEUES),
            worker=st.sampled_from(WORKERS),
            limit=st.integers(1, 4),
            started=st.sampled_from([None, False]),  # the runtime's claims, the seed API's
        )
        def claim(self, queue, worker, limit, started):
            real, model = self.both("claim_jobs", queue, worker, limit, started=started)
            assert [r.jid for r in real] == [r.jid for r in model]
            assert [r.attempt for r in real] == [r.attempt for r in model]
            for record in real:
                self.claims[record.jid] = (record.attempt, worker)
            # Claimed jobs join the bundle, so later steps finish, fail or release them.
            return multiple(*(record.jid for record in real))

        @rule(jid=jids, stale=st.booleans())
        def complete(self, jid, stale):
            attempt, worker = self.claims.get(jid, (1, "w1"))
            completion = Completion(jid, attempt + (1 if stale else 0), worker)
            real, model = self.both("complete_jobs", [completion])
            assert real == model

        @rule(jid=jids, retry=st.sampled_from([None, 0.0, 3600.0]))
        def fail(self, jid, retry):
            attempt, worker = self.claims.get(jid, (1, "w1"))
            failure = Failure(jid, attempt, worker, {"message": "boom"}, retry_in=retry)
            real, model = self.both("fail_jobs", [failure])
            assert real == model

        @rule(
            worker=st.sampled_from(WORKERS), queue=st.sampled_from(QUEUES), limit=st.integers(1, 3)
        )
        def release(self, worker, queue, limit):
            real, model = self.both("release_jobs", worker, queue=queue, limit=limit)
            assert sorted(real) == sorted(model)

        @rule(jid=jids)
        def release_one(self, jid):
            _attempt, worker = self.claims.get(jid, (1, "w1"))
            real, model = self.both("release_jobs", worker, [jid])
            assert real == model

        @rule(worker=st.sampled_from(WORKERS), queue=st.sampled_from(QUEUES), jid=jids)
        def release_all_but(self, worker, queue, jid):
            real, model = self.both("release_jobs", worker, queue=queue, keep=[jid])
            assert sorted(real) == sorted(model)

        @rule(jid=jids, waiting=st.booleans())
        def renew(self, jid, waiting):
            _attempt, worker = self.claims.get(jid, (1, "w1"))
            unstarted = [jid] if waiting else []
            real, model = self.both("renew_leases", worker, [jid], unstarted=unstarted)
            assert real == model

        @rule(jid=jids, grace=st.sampled_from([0.0, 3600.0]))
        def hand_back(self, jid, grace):
            attempt, worker = self.claims.get(jid, (1, "w1"))
            error = {"error_type": "unrunnable", "message": "unknown here"}
            hand_back = HandBack(jid, attempt, worker, "MachineJob", "unknown here", error)
            real, model = self.both("hand_back_jobs", [hand_back], grace=grace)
            assert real == model

        @rule(jid=jids)
        def delete(self, jid):
            real, model = self.both("delete_jobs", [jid])
            assert real == model

        @rule(queue=st.sampled_from(QUEUES))
        def clear(self, queue):
            real, model = self.both("clear_waiting", queue)
            assert real == model

        @rule(jid=jids)
        def schedule_now(self, jid):
            record = self.model.get_job(jid)
            if record is not None:
                self.both("schedule_job", record.to_json(), 0)

        @rule(limit=st.integers(1, 3))
        def fetch_due(self, limit):
            real, model = self.both("due_jobs", datetime.now(UTC), limit, take=True)
            assert [r.jid for r in real] == [r.jid for r in model]

        @rule(jid=jids)
        def retry(self, jid):
            real, model = self.both("retry_jobs", [jid])
            assert real == model

        @rule(jid=jids)
        def cancel(self, jid):
            real, model = self.both("cancel_jobs", [jid])
            assert real == model

        @rule(target=jids, key=st.sampled_from(["k1", "k2"]), queue=st.sampled_from(QUEUES))
        def enqueue_unique(self, key, queue):
            job = NewJob(
                jid=uuid4(), queue=queue, job_type="MachineJob", args={"n": 0}, unique_key=key
            )
            real, model = self.both("enqueue_jobs", [job])
            assert real == model
            self.known.update(real)
            return real[0]

        @rule(target=jids, queue=st.sampled_from(QUEUES))
        def enqueue_expired(self, queue):
            # expired before it ever ran: never claimed, and the expiry sweep takes it
            job = NewJob(
                jid=uuid4(),
                queue=queue,
                job_type="MachineJob",
                args={"n": 0},
                expires_at=datetime(2000, 1, 1, tzinfo=UTC),
            )
            real, model = self.both("enqueue_jobs", [job])
            assert real == model
            self.known.update(real)
            return real[0]

        @rule()
        def expire(self):
            real, model = self.both("expire_waiting_jobs")
            assert sorted(real) == sorted(model)

        @rule(jid=jids)
        def mark_dead(self, jid):
            record = self.model.get_job(jid)
            if record is not None:
                until = int(datetime.now(UTC).timestamp() * 1000) + 3_600_000
                self.both("mark_as_dead", record.to_json(), until)

        @invariant()
        def both_stores_agree_on_attempts_budgets_and_run_state(self):
            assert _run_state_map(self.real, self.known) == _run_state_map(self.model, self.known)

        @invariant()
        def every_job_is_in_the_same_single_state(self):
            real = _status_map(self.real, self.known)
            model = _status_map(self.model, self.known)
            assert real == model
            existing = [s for s in real.values() if s is not None]
            for store in (self.real, self.model):
                stats = store.queue_stats()
                located = sum(
                    s.waiting + s.due_later + s.running + s.retrying + s.dead + s.completed
                    for s in stats.values()
                )
                assert located == len(existing)
                for queue in QUEUES:
                    running = sum(
                        1
                        for jid in self.known
                        if real[jid] is JobStatus.RUNNING and self.model.get_job(jid).queue == queue
                    )
                    assert store.processing_queue_size(queue) == running

    StoreMachine.TestCase.settings = settings(
        max_examples=60,
        stateful_step_count=30,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    try:
        StoreMachine.TestCase().runTest()
    finally:
        postgres.close()
