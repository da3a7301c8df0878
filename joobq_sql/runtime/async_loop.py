"""One event loop, in its own thread, for the ``async def perform`` jobs of a worker.

A worker thread hands the coroutine over and waits for it, so async jobs count against the
queue's worker count like sync ones. At the job's timeout the task is cancelled, and the worker
thread waits until the task has really ended (a job may catch the cancellation and clean up, or
go on) before it reports the timeout: the job's retry never overlaps the run it replaces.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
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
        """Start `coroutine` on the loop. The returned future is done only once the task has
        ended; cancelling it asks the task to cancel (see TaskFuture)."""
        return TaskFuture(self._ensure(), coroutine)

    def wait(self, future: concurrent.futures.Future[Any], timeout: float | None) -> Any:
        """Wait for a submitted coroutine; JobTimeout when it is not done within `timeout`
        seconds, raised once the task, cancelled then, has really ended."""
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            # Its outcome no longer matters (the deadline passed), only that it is over.
            with contextlib.suppress(Exception, asyncio.CancelledError):
                future.result()
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


class TaskFuture(concurrent.futures.Future[Any]):
    """A coroutine's task on a loop, seen from another thread, whose outcome is set only once
    the task has ended, cancelled or not.

    Unlike the future of asyncio.run_coroutine_threadsafe, which `cancel()` makes done at once
    while the task may still be unwinding (or may catch the cancellation and go on), `cancel()`
    here only asks the task to cancel and returns True; the future becomes cancelled when the
    task ends cancelled. So whoever waits on it knows the run is over.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, coroutine: Coroutine[Any, Any, Any]):
        super().__init__()
        self._loop = loop
        self._task: asyncio.Task[Any] | None = None
        self._cancel_asked = False
        loop.call_soon_threadsafe(self._start, coroutine)

    def _start(self, coroutine: Coroutine[Any, Any, Any]) -> None:  # on the loop
        self._task = task = self._loop.create_task(coroutine)
        task.add_done_callback(self._ended)
        if self._cancel_asked:
            task.cancel()

    def _ended(self, task: asyncio.Task[Any]) -> None:  # on the loop
        if task.cancelled():
            super().cancel()
        elif (error := task.exception()) is not None:
            self.set_exception(error)
        else:
            self.set_result(task.result())

    def cancel(self) -> bool:
        if self.done():
            return False
        self._cancel_asked = True
        with contextlib.suppress(RuntimeError):  # the loop has stopped: nothing to cancel
            self._loop.call_soon_threadsafe(self._cancel_task)
        return True

    def _cancel_task(self) -> None:  # on the loop
        if self._task is not None:
            self._task.cancel()
