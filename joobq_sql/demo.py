"""The demo that `joobq-sql demo` runs: a realistic mix of jobs on a few queues of its own.

Each kind of job shows one behaviour, has a queue of its own (so that per-queue counts are
per-kind counts), and a known outcome:

- emails: succeed;
- uploads: fail twice (a flaky service), then succeed on the third run;
- webhooks: always fail; with retries=2 they run 3 times (backoff 1 s, 2 s) and end dead;
- reminders: delayed by 2-4 s, then succeed;
- offers: expire 1 s after enqueue but are delayed 3 s, so they never run: the expiry sweep
  makes them dead with reason "expired";
- heartbeat: a recurring job, every second for the first few seconds.

Completed jobs are kept (keep_completed), so every count comes from the database.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from .app import JoobQ
from .job import Job
from .runtime.worker import Worker
from .store.base import Store

_runs: Counter[str] = Counter()
_runs_lock = threading.Lock()


def _ran(kind: str) -> None:
    with _runs_lock:
        _runs[kind] += 1


def runs() -> dict[str, int]:
    """How many times each kind's perform started in this process."""
    with _runs_lock:
        return dict(_runs)


class DemoSendEmail(Job):
    queue = "demo-emails"
    to: str

    def perform(self) -> None:
        _ran("emails")
        time.sleep(random.uniform(0.05, 0.3))  # talking to an SMTP server


class DemoFlakyUpload(Job):
    queue = "demo-uploads"
    retries = 3
    file: str

    def perform(self) -> None:
        _ran("uploads")
        time.sleep(0.05)
        if self.attempt <= 2:
            raise ConnectionError(f"storage unavailable uploading {self.file} (run {self.attempt})")


class DemoBrokenWebhook(Job):
    queue = "demo-webhooks"
    retries = 2
    url: str

    def perform(self) -> None:
        _ran("webhooks")
        raise RuntimeError(f"POST {self.url} answered 500")


class DemoReminder(Job):
    queue = "demo-reminders"
    user: str

    def perform(self) -> None:
        _ran("reminders")


class DemoExpiringOffer(Job):
    queue = "demo-offers"
    expires = timedelta(seconds=1)
    code: str

    def perform(self) -> None:  # never runs: it expires while it waits for its delay
        _ran("offers")


class DemoHeartbeat(Job):
    queue = "demo-heartbeat"

    def perform(self) -> None:
        _ran("heartbeat")


@dataclass(frozen=True)
class Kind:
    """One kind of demo job and the outcome it must reach."""

    name: str
    job_class: type[Job]
    shows: str
    completes: bool  # each job of the kind ends completed (else dead)
    runs_per_job: int

    @property
    def queue(self) -> str:
        return self.job_class.queue


KINDS = (
    Kind("emails", DemoSendEmail, "succeed", True, 1),
    Kind("uploads", DemoFlakyUpload, "fail twice, then succeed", True, 3),
    Kind("webhooks", DemoBrokenWebhook, "always fail: dead after 3 runs", False, 3),
    Kind("reminders", DemoReminder, "delayed 2-4 s", True, 1),
    Kind("offers", DemoExpiringOffer, "expire before they run: dead", False, 0),
    Kind("heartbeat", DemoHeartbeat, "recurring, every second", True, 1),
)
QUEUES = tuple(kind.queue for kind in KINDS)
#: Seconds the recurring job keeps being enqueued.
RECURRING_FOR = 3.5


@dataclass(frozen=True)
class KindState:
    """What the database holds for one kind right now."""

    kind: Kind
    waiting: int  # enqueued or scheduled, due or not
    running: int
    retrying: int
    completed: int
    dead: int
    runs: int

    @property
    def enqueued(self) -> int:
        return self.waiting + self.running + self.retrying + self.completed + self.dead

    @property
    def final(self) -> int:
        return self.completed + self.dead

    def document(self) -> dict[str, Any]:
        return {
            "kind": self.kind.name,
            "queue": self.kind.queue,
            "shows": self.kind.shows,
            "enqueued": self.enqueued,
            "completed": self.completed,
            "dead": self.dead,
            "runs": self.runs,
            "expected_completed": self.enqueued if self.kind.completes else 0,
            "expected_dead": 0 if self.kind.completes else self.enqueued,
            "expected_runs": self.enqueued * self.kind.runs_per_job,
        }

    @property
    def as_expected(self) -> bool:
        d = self.document()
        return all(d[k] == d[f"expected_{k}"] for k in ("completed", "dead", "runs"))


def build_app(store: Store) -> JoobQ:
    """The demo's application: quick maintenance (so the expired job is swept within a second),
    quick polling, four workers per queue."""
    app = JoobQ(store=store, maintenance_interval=0.5, poll_interval=0.5, shutdown_grace=5)
    for kind in KINDS:
        app.queue(kind.queue, workers=4, jobs=[kind.job_class])
    return app


def clear(store: Store) -> None:
    """Delete every job of the demo's queues, in any state, so runs are independent; resume
    them in case someone paused one."""
    for queue in QUEUES:
        while batch := store.search_jobs(queue=queue, limit=1000):
            store.delete_jobs([record.jid for record in batch])
        store.resume_queue(queue)


def enqueue_mix() -> None:
    for n in range(8):
        DemoSendEmail.enqueue(to=f"user{n}@example.com")
    for n in range(3):
        DemoFlakyUpload.enqueue(file=f"report-{n}.pdf")
    for n in range(2):
        DemoBrokenWebhook.enqueue(url=f"https://hooks.example.com/{n}")
    for n, delay in enumerate((2.0, 3.0, 4.0)):
        DemoReminder.delay(delay, user=f"user{n}")
    DemoExpiringOffer.delay(3.0, code="SPRING-SALE")


class Recurring:
    """The recurring part: `app.every(1 s)`, whose scheduler is stopped after RECURRING_FOR
    seconds so that the demo can end."""

    def __init__(self, app: JoobQ) -> None:
        app.every(timedelta(seconds=1), DemoHeartbeat, name="demo-heartbeat")
        self._done = threading.Event()

    def start(self, worker: Worker) -> None:
        def stop_after() -> None:
            time.sleep(RECURRING_FOR)
            worker.stop_scheduler()
            self._done.set()

        threading.Thread(target=stop_after, name="demo-recurring", daemon=True).start()

    @property
    def done(self) -> bool:
        return self._done.is_set()


def snapshot(store: Store) -> list[KindState]:
    stats = store.queue_stats()
    performed = runs()
    states = []
    for kind in KINDS:
        s = stats.get(kind.queue)
        states.append(
            KindState(
                kind,
                waiting=(s.waiting + s.due_later) if s else 0,
                running=s.running if s else 0,
                retrying=s.retrying if s else 0,
                completed=s.completed if s else 0,
                dead=s.dead if s else 0,
                runs=performed.get(kind.name, 0),
            )
        )
    return states


def run_demo(
    store: Store,
    *,
    on_progress: Callable[[list[KindState], float], None],
    refresh: float = 0.25,
    timeout: float = 50.0,
) -> list[KindState]:
    """Clear the demo queues, enqueue the mix, run workers in this process until every job is
    completed or dead, calling `on_progress(states, elapsed)` every `refresh` seconds; return
    the final states. TimeoutError after `timeout` seconds."""
    clear(store)
    app = build_app(store)
    recurring = Recurring(app)
    started = time.monotonic()
    enqueue_mix()
    worker = app.start()
    recurring.start(worker)
    try:
        while True:
            states = snapshot(store)
            elapsed = time.monotonic() - started
            on_progress(states, elapsed)
            if recurring.done and all(s.final == s.enqueued for s in states):
                return states
            if elapsed > timeout:
                left = sum(s.enqueued - s.final for s in states)
                raise TimeoutError(f"the demo did not finish in {timeout:.0f}s: {left} jobs left")
            time.sleep(refresh)
    finally:
        worker.stop(grace=5)
