"""Leases at the runtime level: a worker that stops renewing loses its job to another worker,
and its late finish changes nothing (JoobQ defect 4: no leases, no fencing)."""

from __future__ import annotations

import threading
import uuid

from joobq_sql import Job, JobStatus, NewJob
from joobq_sql.runtime.acker import Acker
from joobq_sql.runtime.heartbeat import Heartbeat
from tests.helpers import wait_until
from tests.runtime_support import Recorder, start

log = Recorder()
gates = {1: threading.Event(), 2: threading.Event()}


class LeaseHeld(Job):
    def perform(self) -> None:
        log.add(("start", self.attempt))
        gates[self.attempt].wait(30)
        log.add(("end", self.attempt))


def test_a_late_finish_of_a_rescued_run_is_fenced_out(make_app) -> None:
    for gate in gates.values():
        gate.clear()
    stalled_app = make_app(lease=1)
    stalled_app.queue("default", workers=1, jobs=[LeaseHeld])
    jid = LeaseHeld.enqueue()
    stalled = start(stalled_app)
    wait_until(lambda: ("start", 1) in log.snapshot(), what="attempt 1 started")
    # The worker hangs: it claims nothing more, and its lease is no longer renewed.
    stalled.runners["default"].begin_shutdown()
    stalled.heartbeat.stop()

    healthy_app = make_app(lease=30)
    healthy_app.queue("default", workers=1, jobs=[LeaseHeld])
    healthy = start(healthy_app)
    wait_until(lambda: ("start", 2) in log.snapshot(), timeout=15, what="rescued and rerun")
    record = healthy_app.store.get_job(jid)
    assert (record.status, record.attempt, record.worker_id) == (
        JobStatus.RUNNING,
        2,
        healthy.worker_id,
    )
    assert record.errors[-1]["error_type"] == "lease_expired"

    gates[1].set()  # the stalled run finishes late and reports success
    wait_until(lambda: ("end", 1) in log.snapshot())
    wait_until(lambda: not stalled.acker.pending_jids(), what="late ack written")
    record = healthy_app.store.get_job(jid)
    assert (record.status, record.attempt, record.worker_id) == (
        JobStatus.RUNNING,
        2,
        healthy.worker_id,
    )
    assert healthy_app.stats()["default"].totals["completed"] == 0

    gates[2].set()
    wait_until(lambda: healthy_app.store.get_job(jid) is None, what="attempt 2 completed")
    totals = healthy_app.stats()["default"].totals
    assert (totals["completed"], totals["rescued"]) == (1, 1)


class _SlowToReturnCompletions:
    """The store, except that complete_jobs, once it has committed, waits for `release`: the
    moment between an acknowledgement's commit and its jobs leaving the acker's held set."""

    def __init__(self, store) -> None:
        self.store = store
        self.committed = threading.Event()
        self.release = threading.Event()

    def complete_jobs(self, completions):
        done = self.store.complete_jobs(completions)
        self.committed.set()
        self.release.wait(30)
        return done


class _RecordingRenewals:
    def __init__(self, store) -> None:
        self.store = store
        self.renewing = threading.Event()

    def renew_leases(self, worker_id, jids, *, lease=None):
        self.renewing.set()
        return self.store.renew_leases(worker_id, jids, lease=lease)


def test_a_renewal_waits_for_the_acknowledgement_being_written(pg_store) -> None:
    """The heartbeat renews every held job, acknowledged-but-pending ones included, while the
    acknowledger deletes finished ones. Run at once, the two statements lock the same rows in
    different orders and can deadlock (seen in a million-job drain), and a renewal that runs
    just after an acknowledgement committed misses its job and calls it rescued. So a renewal
    waits for the write in progress, and then nothing it misses is reported lost."""
    jid = uuid.uuid4()
    pg_store.enqueue_jobs([NewJob(jid=jid, queue="q", job_type="LeaseHeld", args={})])
    (record,) = pg_store.claim_jobs("q", "w1", 1)
    slow = _SlowToReturnCompletions(pg_store)
    renewals = _RecordingRenewals(pg_store)
    acker = Acker(slow, dead_letter_ttl=60.0)  # type: ignore[arg-type]
    lost: list[set[uuid.UUID]] = []
    heartbeat = Heartbeat(
        renewals,  # type: ignore[arg-type]
        worker_id="w1",
        lease=30.0,
        interval=3600.0,  # beats only when called here
        held_jids=acker.pending_jids,
        on_lost=lost.append,
        quiet=acker.quiet,
    )
    acker.start()
    try:
        acker.complete(record.completion)
        assert slow.committed.wait(10), "the acknowledgement was not written"
        beat = threading.Thread(target=heartbeat.beat)
        beat.start()
        # A bounded wait for something that must not happen: no renewal during the write.
        assert not renewals.renewing.wait(0.5), "a renewal ran during an acknowledgement"
        slow.release.set()
        beat.join(10)
        assert not beat.is_alive() and renewals.renewing.is_set()
    finally:
        slow.release.set()
        acker.stop()
    assert lost == []
    assert pg_store.get_job(jid) is None


class LeaseBuffered(Job):
    gate = threading.Event()

    def perform(self) -> None:
        log.add(("buffered-job", self.jid))
        type(self).gate.wait(30)


def test_the_heartbeat_reports_which_held_jobs_have_started(make_app) -> None:
    """Each lease renewal marks the jobs this worker runs started and the ones waiting in its
    buffer not started, so a rescue of a buffered job spends none of its retries."""
    LeaseBuffered.gate.clear()
    app = make_app(prefetch=1, worker_batch_size=2, heartbeat_interval=0.1, lease=5)
    app.queue("default", workers=1, jobs=[LeaseBuffered])
    first, second = LeaseBuffered.enqueue(), LeaseBuffered.enqueue()
    worker = start(app)
    try:
        wait_until(lambda: ("buffered-job", first) in log.snapshot(), what="the first job runs")
        assert worker.buffered_jids() == {second}
        wait_until(
            lambda: (
                app.store.get_job(first).started is True
                and app.store.get_job(second).started is False
            ),
            what="a renewal to mark the running job started and the buffered one not",
        )
    finally:
        LeaseBuffered.gate.set()
    wait_until(lambda: app.store.get_job(second) is None, what="both jobs completed")


def test_a_heartbeat_reports_the_unstarted_held_jobs_to_the_renewal(pg_store) -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    pg_store.enqueue_jobs([NewJob(jid=j, queue="q", job_type="LeaseHeld", args={}) for j in (a, b)])
    pg_store.claim_jobs("q", "w1", 2)
    waiting = {b, uuid.uuid4()}  # one the worker does not hold is ignored
    heartbeat = Heartbeat(
        pg_store,
        worker_id="w1",
        lease=30.0,
        interval=3600.0,
        held_jids=lambda: {a, b},
        unstarted_jids=lambda: waiting,
    )
    heartbeat.beat()
    assert (pg_store.get_job(a).started, pg_store.get_job(b).started) == (True, False)
    plain = Heartbeat(
        pg_store, worker_id="w1", lease=30.0, interval=3600.0, held_jids=lambda: {a, b}
    )
    plain.beat()  # no unstarted source: every renewed job counts as started
    assert (pg_store.get_job(a).started, pg_store.get_job(b).started) == (True, True)
