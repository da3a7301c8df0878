"""One event loop, in its own thread, for the ``async def perform`` jobs of a worker.

A worker thread hands the coroutine over and waits for it, so async jobs count against the
queue's worker count like sync ones. At the job's timeout the task is cancelled.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from typing import Any

from .timeouts import JobTimeout


class AsyncLoop:
    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def _ensure(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=loop.run_forever, name="joobq-async-loop", daemon=True
                )
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop

    def submit(self, coroutine: Coroutine[Any, Any, Any]) -> concurrent.futures.Future[Any]:
        """Start `coroutine` on the loop; cancelling the returned future cancels the task."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._ensure())

    def wait(self, future: concurrent.futures.Future[Any], timeout: float | None) -> Any:
        """Wait for a submitted coroutine; JobTimeout (after cancelling it) when it is not done
        within `timeout` seconds."""
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise JobTimeout(f"the job did not finish within {timeout:g}s") from None

    def run(self, coroutine: Coroutine[Any, Any, Any], timeout: float | None) -> Any:
        return self.wait(self.submit(coroutine), timeout)

    def cancel_all(self) -> None:
        """Cancel every task still running (after the shutdown grace period)."""
        loop = self._loop
        if loop is None:
            return

        def cancel() -> None:
            for task in asyncio.all_tasks(loop):
                task.cancel()

        loop.call_soon_threadsafe(cancel)

    def stop(self) -> None:
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is not None and thread is not None:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=5)
            if not thread.is_alive():
                loop.close()
