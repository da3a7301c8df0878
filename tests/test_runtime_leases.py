"""Leases at the runtime level: a worker that stops renewing loses its job to another worker,
and its late finish changes nothing (JoobQ defect 4: no leases, no fencing)."""

from __future__ import annotations

import threading

from joobq_sql import Job, JobStatus
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
