"""The application `joobq-sql worker --app tests.hostile_output_app:app` runs in the
hostile-output tests: its one job fails with its own `text` as the error message, so that text
from the database reaches the worker's log (the job's exception quotes its args)."""

from __future__ import annotations

from typing import Any

from joobq_sql import Job, JoobQ

QUEUE = "hostile-output"


class HostileEchoJob(Job):
    queue = QUEUE
    retries = 0
    text: str = ""

    def perform(self) -> None:
        raise RuntimeError(f"cannot handle {self.text}")


_app: JoobQ | None = None


def __getattr__(name: str) -> Any:
    global _app
    if name != "app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if _app is None:
        _app = JoobQ(poll_interval=0.2, maintenance_interval=0.5, shutdown_grace=5)
        _app.queue(QUEUE, workers=1, jobs=[HostileEchoJob])
    return _app
