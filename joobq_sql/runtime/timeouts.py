"""Execution timeouts.

An async job is cancelled at its deadline: a clean, cooperative stop at its next await.

A sync job runs in a worker thread, and Python cannot kill a thread. At the deadline the runtime:
1. fails the job through the retry path at once (it is retried or goes dead, per policy);
2. frees its worker slot: a fresh worker thread takes the slot, so the queue keeps processing;
3. raises JobTimeout inside the overrunning thread (PyThreadState_SetAsyncExc), which stops a job
   running Python code at its next bytecode.
Limit: a thread blocked inside one long C call (time.sleep, a socket read without its own
timeout) only sees the exception when that call returns; until then it lives on beside the new
worker thread, and whatever it finishes is discarded (its completion is fenced out). Give such
calls their own timeouts.
"""

from __future__ import annotations

import ctypes
import threading


class JobTimeout(Exception):
    """A job ran past its timeout."""


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
