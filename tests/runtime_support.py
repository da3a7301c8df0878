"""Fixtures for tests that run workers in this process against the test's database."""

from __future__ import annotations

import threading
from typing import Any

from joobq_sql import JoobQ
from joobq_sql.runtime.worker import Worker

#: Settings that make the runtime react in tenths of seconds instead of its production pace.
FAST = {
    "poll_interval": 0.2,
    "maintenance_interval": 0.2,
    "retry_jitter": 0.0,
    "shutdown_grace": 5,
}


class Recorder:
    """Thread-safe record of what jobs did, for assertions."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.events: list[Any] = []

    def add(self, event: Any) -> None:
        with self.lock:
            self.events.append(event)

    def __len__(self) -> int:
        with self.lock:
            return len(self.events)

    def snapshot(self) -> list[Any]:
        with self.lock:
            return list(self.events)


def start(app: JoobQ, queues: list[str] | None = None) -> Worker:
    worker = app.start(queues)
    app.__dict__.setdefault("_test_workers", []).append(worker)
    return worker
