"""Operating a running queue: unique jobs, cancel (waiting and cooperative), re-drive, pause."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from joobq_sql import DuplicateJobError, Job, JobStatus
from tests.helpers import wait_until
from tests.runtime_support import Recorder, start

log = Recorder()


@pytest.fixture(autouse=True)
def _fresh_log() -> None:
    log.events.clear()


class OpsInvoice(Job):
    customer: int

    def unique_key(self) -> str:
        return f"invoice:{self.customer}"

    def perform(self) -> None:
        log.add(("invoice", self.customer))


class OpsStrictInvoice(OpsInvoice):
    job_type = "OpsStrictInvoice"
    on_duplicate = "raise"


class OpsHello(Job):
    n: int

    def perform(self) -> None:
        log.add(("hello", self.n))


class OpsCooperative(Job):
    retries = 3

    def perform(self) -> None:
        log.add(("started", self.attempt))
        for _ in range(3000):
            self.check_cancelled()
            time.sleep(0.01)
        log.add("finished")


class OpsAsyncCancellable(Job):
    async def perform(self) -> None:
        log.add("async-started")
        await asyncio.sleep(30)


class OpsFailsOnce(Job):
    retries = 0

    def perform(self) -> None:
        log.add(("run", self.attempt))
        if self.attempt == 1:
            raise RuntimeError("first run fails")


def test_fifty_concurrent_enqueues_of_one_unique_job_make_one(make_app) -> None:
    app = make_app()
    app.queue("default", workers=1, jobs=[OpsInvoice])
    barrier = threading.Barrier(50)
    jids: list = []

    def enqueue() -> None:
        barrier.wait()
        jids.append(OpsInvoice.enqueue(customer=7))

    threads = [threading.Thread(target=enqueue) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(jids) == 50 and len(set(jids)) == 1
    assert app.store.queue_size("default") == 1


def test_a_unique_class_can_refuse_duplicates(make_app) -> None:
    app = make_app()
    app.queue("default", workers=1, jobs=[OpsStrictInvoice])
    OpsStrictInvoice.enqueue(customer=1)
    with pytest.raises(DuplicateJobError, match="invoice:1"):
        OpsStrictInvoice.enqueue(customer=1)
    OpsStrictInvoice.enqueue(customer=2)
    assert app.store.queue_size("default") == 2


def test_a_cancelled_waiting_job_never_runs(make_app) -> None:
    app = make_app()
    app.queue("default", workers=1, jobs=[OpsHello])
    doomed = OpsHello.delay(0.3, n=1)
    assert app.store.cancel_jobs([doomed]) == {doomed: "cancelled"}
    OpsHello.delay(0.5, n=2)
    start(app)
    wait_until(lambda: ("hello", 2) in log.snapshot(), what="the later job ran")
    assert ("hello", 1) not in log.snapshot()
    record = app.store.get_job(doomed)
    assert (record.status, record.dead_reason) == (JobStatus.DEAD, "cancelled")


@pytest.mark.parametrize("job_class", [OpsCooperative, OpsAsyncCancellable])
def test_a_running_job_stops_when_cancelled(make_app, job_class) -> None:
    app = make_app()
    app.queue("default", workers=1, jobs=[job_class, OpsHello])
    jid = job_class.enqueue()
    start(app)
    wait_until(lambda: len(log) == 1, what="the job started")
    assert app.cancel(jid) == {jid: "requested"}
    dead = wait_until(
        lambda: (r := app.store.get_job(jid)) and r.status is JobStatus.DEAD and r,
        timeout=10,
        what="the job stopped",
    )
    assert dead.dead_reason == "cancelled" and "finished" not in log.snapshot()
    OpsHello.enqueue(n=1)
    wait_until(lambda: ("hello", 1) in log.snapshot(), what="the worker slot is free again")


def test_a_redriven_dead_job_runs_again_and_keeps_its_errors(make_app) -> None:
    app = make_app()
    app.queue("default", workers=1, jobs=[OpsFailsOnce])
    seen: list = []

    @app.use  # look at the row as each run starts
    def peek(job, context, call_next):
        seen.append(app.store.get_job(job.jid))
        return call_next()

    jid = OpsFailsOnce.enqueue()
    start(app)
    dead = wait_until(
        lambda: (r := app.store.get_job(jid)) and r.status is JobStatus.DEAD and r, timeout=10
    )
    assert len(dead.errors) == 1 and dead.dead_reason == "retries exhausted"
    assert app.retry(jid) == [jid]
    wait_until(lambda: ("run", 2) in log.snapshot(), timeout=10, what="the re-driven run")
    wait_until(lambda: app.store.get_job(jid) is None, what="completed")
    rerun = seen[-1]
    assert (rerun.attempt, rerun.errors) == (2, dead.errors)


def test_a_paused_queue_runs_nothing_new_until_resumed(make_app) -> None:
    app = make_app(poll_interval=0.1)
    app.queue("default", workers=1, jobs=[OpsHello])
    assert app.pause("default") is True
    worker = start(app)
    runner = worker.runners["default"]
    wait_until(lambda: runner._paused, what="the pause seen")
    for n in range(3):
        OpsHello.enqueue(n=n)
    # Paused: the fetcher wakes (NOTIFY, polls) and looks, but claims nothing.
    passes = runner.counters["passes"]
    wait_until(lambda: runner.counters["passes"] >= passes + 3, what="three fetcher passes")
    assert log.snapshot() == [] and runner.counters["claimed"] == 0
    assert app.store.queue_size("default") == 3
    assert app.stats()["default"].paused is True
    assert app.resume("default") is True
    wait_until(lambda: len(log) == 3, timeout=5, what="jobs ran after resume")


def test_pausing_a_busy_queue_lets_running_jobs_finish_but_starts_no_more(make_app) -> None:
    gate = threading.Event()

    class OpsGated(Job):
        n: int

        def perform(self) -> None:
            log.add(("gated", self.n))
            gate.wait(10)

    app = make_app(poll_interval=0.1)
    app.queue("default", workers=1, jobs=[OpsGated])
    OpsGated.enqueue(n=1)
    OpsGated.enqueue(n=2)
    worker = start(app)
    wait_until(lambda: ("gated", 1) in log.snapshot())
    app.store.pause_queue("default")
    wait_until(lambda: worker.runners["default"]._paused, what="the pause seen")
    gate.set()
    wait_until(lambda: app.stats()["default"].totals["completed"] == 1)
    assert ("gated", 2) not in log.snapshot()
    app.store.resume_queue("default")
    wait_until(lambda: ("gated", 2) in log.snapshot(), timeout=5)
