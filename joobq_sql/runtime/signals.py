"""Blocking run with graceful shutdown on SIGTERM / SIGINT."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

from .worker import Worker

logger = logging.getLogger("joobq_sql.worker")


def run_until_signalled(worker: Worker, *, grace: float) -> int:
    """Block until SIGTERM or SIGINT, then drain `worker`; a second signal skips the grace
    period. Returns the process exit code: 0."""
    requested = threading.Event()

    def handle(signum: int, _frame: FrameType | None) -> None:
        if requested.is_set():
            logger.warning("second %s: skipping the grace period", signal.Signals(signum).name)
            worker.hurry()
        else:
            logger.info("%s: draining (grace %.0fs)", signal.Signals(signum).name, grace)
            requested.set()

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        while not requested.wait(0.5):
            pass
        worker.stop(grace)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
