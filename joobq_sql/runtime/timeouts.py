"""Execution timeouts, and what they guarantee.

The guarantee: while a worker process is alive, two runs of one job never overlap because of a
timeout. A timed-out run's failure is reported, and so its retry made claimable, only once the
run has really ended (its thread returned, its task finished); until then the job stays held
by this worker and its lease is renewed. If the run never ends, its retry waits until the
worker process is gone and the lease is rescued. The one exception: a Worker stopped inside a
process that lives on (Worker.stop, not app.run) waits for such a run through its shutdown
grace, then stops renewing its lease and leaves it to lease rescue, though the thread may
still run.

An async job is cancelled at its deadline: a clean, cooperative stop at its next await. Code
that catches the cancellation and goes on keeps the job and its worker slot until it returns.

A sync job runs in a worker thread, and Python cannot kill a thread. At the deadline the runtime:
1. raises JobTimeout inside the overrunning thread (PyThreadState_SetAsyncExc), which stops a job
   running Python code at its next bytecode. JobTimeout derives from BaseException, not
   Exception, so an `except Exception:` in the job does not swallow it (a bare `except:` or
   `except BaseException:` still can);
2. frees its worker slot: a fresh worker thread takes the slot, so the queue keeps processing
   (the overrunning thread is one extra thread until it ends);
3. reports the failure (JobTimeout, retried or dead per policy) when the old thread has ended.
Limit: a thread blocked inside one long C call (time.sleep, a socket read without its own
timeout) only sees the exception when that call returns; until then the job is not retried.
Give such calls their own timeouts. A sync job in an async queue runs in a thread of its own,
under the same rules, and keeps its slot until that thread ends.
"""

from __future__ import annotations

import ctypes
import threading


class JobTimeout(BaseException):
    """A job ran past its timeout. A BaseException, like KeyboardInterrupt, so that a job's
    `except Exception:` does not swallow it and run on past its deadline."""


def raise_in_thread(thread: threading.Thread, exc_type: type[BaseException]) -> bool:
    """Ask `thread` to raise `exc_type` at its next bytecode; False if it already ended."""
    ident = thread.ident
    if ident is None or not thread.is_alive():
        return False
    changed: int = ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(ident), ctypes.py_object(exc_type)
    )
    if changed > 1:  # never expected; undo so no other thread is hit
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), None)
        return False
    return changed == 1
