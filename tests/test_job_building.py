"""A claimed job's Job object is built by the worker thread that runs it, not by the queue's
fetcher (whose claim loop is a drain's critical path), and the job stays held meanwhile: a
release of unseen claims or a lease renewal sees it, as one claimed and not yet started."""

from __future__ import annotations

import threading

from joobq_sql import Job, JobStatus
from tests.helpers import wait_until
from tests.runtime_support import start

QUEUE = "building"
built_in: list[str] = []
entered = threading.Event()
gate = threading.Event()


class SlowToBuildJob(Job):
    queue = QUEUE
    retries = 0
    n: int = 0

    def __post_init__(self) -> None:  # a user's own constructor code (a dataclass's hook)
        built_in.append(threading.current_thread().name)
        entered.set()
        gate.wait(10)  # the test opens it; bounded, so a failing test never hangs

    def perform(self) -> None:
        pass


def test_a_job_is_built_by_its_worker_thread_and_held_while_it_is_built(make_app) -> None:
    built_in.clear()
    entered.clear()
    gate.clear()
    app = make_app()
    app.queue(QUEUE, workers=1, jobs=[SlowToBuildJob])
    gate.set()
    SlowToBuildJob(n=1).enqueue()  # built here once, by the test's own thread
    built_in.clear()
    entered.clear()
    gate.clear()
    worker = start(app)
    try:
        assert entered.wait(10), "the job was never built"
        runner = worker.runners[QUEUE]
        held = runner.held_jids()
        assert len(held) == 1 and runner.buffered_jids() == held  # held, and not started
        (jid,) = held
        record = app.store.get_job(jid)
        assert record is not None and record.status is JobStatus.RUNNING
    finally:
        gate.set()
    wait_until(lambda: app.store.get_job(jid) is None, what="the job to complete")
    assert built_in and not any(name.startswith("joobq-fetch-") for name in built_in), built_in
