"""Blocking run with graceful shutdown on SIGTERM / SIGINT."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType

from .worker import Worker

logger = logging.getLogger("joobq_sql.worker")


def run_until_signalled(
    start: Callable[[], Worker], *, grace: float, until_empty: bool = False
) -> int:
    """Start a worker with `start()`, block until SIGTERM or SIGINT (or, with `until_empty`,
    until Worker.drained()), then drain it; a second signal skips the grace period. Returns the
    process exit code: 0.

    The handlers are installed before the worker starts, so a signal that arrives while it
    starts up still drains it instead of killing the process with jobs claimed.
    """
    requested = threading.Event()
    hurried = threading.Event()

    def handle(signum: int, _frame: FrameType | None) -> None:
        if requested.is_set():
            logger.warning("second %s: skipping the grace period", signal.Signals(signum).name)
            hurried.set()
        else:
            logger.info("%s: draining (grace %.0fs)", signal.Signals(signum).name, grace)
            requested.set()

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        worker = start()
        # Drained is polled often: a batch run should exit soon after its last job.
        while not requested.wait(0.02 if until_empty else 0.5):
            if until_empty and worker.drained():
                logger.info("the queues are empty: stopping")
                break

        def hurry_on_second_signal() -> None:
            hurried.wait()
            worker.hurry()

        threading.Thread(target=hurry_on_second_signal, name="joobq-hurry", daemon=True).start()
        worker.stop(grace)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
