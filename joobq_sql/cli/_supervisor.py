"""`worker --processes N`: run N worker processes and pass signals on to them.

Each child is `python -m joobq_sql worker ... --processes 1`, in a session of its own, so a
Ctrl-C in a terminal reaches only this supervisor, which forwards it once: a second Ctrl-C is
then a second signal for the children too (skip the grace period), as with a single worker.

A child that exits before any signal was sent is a failure: the others are stopped (SIGTERM,
graceful) and the supervisor exits 1, so that a process manager restarts the whole set.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time
from types import FrameType

import click

_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def supervise(argv: list[str], count: int) -> int:
    """Run `count` copies of `argv` until they exit; return 0 if every one exited cleanly."""
    children: list[subprocess.Popen[bytes]] = []
    forwarded: set[int] = set()
    crashed = False

    def forward(signum: int, _frame: FrameType | None = None) -> None:
        forwarded.add(signum)
        for child in children:
            if child.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    child.send_signal(signum)

    # Handlers first: a signal during start-up must not kill us and orphan the children.
    previous = {sig: signal.signal(sig, forward) for sig in _SIGNALS}
    try:
        for _ in range(count):
            children.append(subprocess.Popen(argv, start_new_session=True))
        click.echo(
            f"started {count} worker processes: {', '.join(str(c.pid) for c in children)}",
            err=True,
        )
        while any(child.poll() is None for child in children):
            if not forwarded and not crashed:
                early = [c for c in children if c.returncode is not None]
                if early:
                    crashed = True
                    click.echo(
                        f"error: worker process {early[0].pid} exited with code "
                        f"{early[0].returncode}; stopping the others",
                        err=True,
                    )
                    forward(signal.SIGTERM)
            time.sleep(0.1)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for child in children:  # only reached early if spawning itself failed
            if child.poll() is None:
                child.terminate()
    # A child that had not yet installed its handlers dies of the forwarded signal itself;
    # it had claimed nothing, so that is a clean stop too.
    clean = all(c.returncode == 0 or -c.returncode in forwarded for c in children)
    return 0 if clean and not crashed else 1
