"""`worker --processes N`: run N worker processes, restart any that dies, pass signals on.

Each child is `python -m joobq_sql worker ... --processes 1`, in a session of its own, so a
Ctrl-C in a terminal reaches only this supervisor, which forwards it once: a second Ctrl-C is
then a second signal for the children too (skip the grace period), as with a single worker.

A child that dies while no signal was sent is logged with its pid and exit status (its code, or
the signal that killed it) and restarted after a backoff: 1 s, doubling for a process slot whose
children keep dying, up to 30 s; a child that ran for a minute starts its slot afresh. A
supervisor that restarts more than `max_restarts` children within a minute gives up: it stops
the others (SIGTERM, graceful) and exits 1, so that a process manager takes over.

Each child is told this supervisor's pid (JOOBQ_SUPERVISOR_PID) and watches for it to go: a
child whose supervisor is gone, whatever killed it (a SIGKILL never reaches the children), drains
as on SIGTERM and exits instead of running on unsupervised. A child that was draining already
takes it as a second signal and skips the rest of its grace period: whoever killed the
supervisor wants the set stopped now.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import math
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from types import FrameType

from ._errors import CliError

#: Tells a child the pid of its supervisor, so that it can stop when the supervisor is gone.
SUPERVISOR_PID_ENV = "JOOBQ_SUPERVISOR_PID"
#: Restarts allowed within a minute, across all children, by default.
DEFAULT_MAX_RESTARTS = 10

_SIGNALS = (signal.SIGTERM, signal.SIGINT)
#: Seconds between two looks at the children (and, in a child, at its parent).
_POLL = 0.1
_WATCH_INTERVAL = 0.25

logger = logging.getLogger("joobq_sql.supervisor")


class Backoff:
    """The wait before restarting one process slot: `first` seconds, doubling with each child
    of the slot that died quickly, at most `limit`; a child that ran `stable_after` seconds
    or longer starts the slot afresh."""

    def __init__(
        self, *, first: float = 1.0, limit: float = 30.0, stable_after: float = 60.0
    ) -> None:
        if not _positive(first):
            raise ValueError(f"first must be > 0 s, got {first!r}")
        if not _positive(limit) or limit < first:
            raise ValueError(f"limit must be >= first ({first:g} s), got {limit!r}")
        if not _positive(stable_after):
            raise ValueError(f"stable_after must be > 0 s, got {stable_after!r}")
        self.first = float(first)
        self.limit = float(limit)
        self.stable_after = float(stable_after)
        self._quick_deaths = 0

    def next_delay(self, *, ran_for: float) -> float:
        """Seconds to wait before restarting a child that died after running `ran_for`."""
        if ran_for >= self.stable_after:
            self._quick_deaths = 0
        self._quick_deaths += 1
        # min() of the exponent first: 2.0 ** a large count would overflow.
        return min(self.first * 2.0 ** min(self._quick_deaths - 1, 64), self.limit)


class RestartBudget:
    """At most `per_minute` restarts within any `window` seconds (0: none at all)."""

    def __init__(self, per_minute: int, *, window: float = 60.0) -> None:
        if isinstance(per_minute, bool) or not isinstance(per_minute, int) or per_minute < 0:
            raise ValueError(f"per_minute must be >= 0, got {per_minute!r}")
        if not _positive(window):
            raise ValueError(f"window must be > 0 s, got {window!r}")
        self.per_minute = per_minute
        self.window = float(window)
        self._spent: collections.deque[float] = collections.deque()

    def recent(self, *, now: float) -> int:
        """Restarts spent within the window that ends at `now`."""
        while self._spent and self._spent[0] <= now - self.window:
            self._spent.popleft()
        return len(self._spent)

    def spend(self, *, now: float) -> bool:
        """Take one restart at `now` (monotonic seconds); False when none is left."""
        if self.recent(now=now) >= self.per_minute:
            return False
        self._spent.append(now)
        return True


def _positive(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )


@dataclass
class _Slot:
    """One of the N places for a worker process, and the child that fills it."""

    backoff: Backoff
    child: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    #: When a dead child's replacement is due (monotonic), and the dead child's pid.
    restart_at: float | None = None
    replaces: int | None = None
    #: The exit status of a child that exited once the supervisor was stopping.
    final: int | None = None

    def alive(self) -> bool:
        return self.child is not None and self.child.returncode is None


class _Supervisor:
    def __init__(self, argv: list[str], count: int, *, max_restarts: int) -> None:
        self.argv = argv
        self.max_restarts = max_restarts
        self.budget = RestartBudget(max_restarts)
        self.slots = [_Slot(Backoff()) for _ in range(count)]
        self.env = {**os.environ, SUPERVISOR_PID_ENV: str(os.getpid())}
        #: Signals received and not yet passed on, and every signal passed on.
        self.pending: list[int] = []
        self.forwarded: set[int] = set()
        self.stopping = False
        self.gave_up = False

    def run(self) -> int:
        # Handlers first: a signal during start-up must not kill us and orphan the children.
        # The handler only notes the signal; the loop passes it on, so a child being spawned
        # at that moment is never missed.
        previous = {sig: signal.signal(sig, self._on_signal) for sig in _SIGNALS}
        try:
            for slot in self.slots:
                self._spawn(slot)
            started = [str(s.child.pid) for s in self.slots if s.child is not None]
            logger.info("started %d worker processes: %s", len(started), ", ".join(started))
            while True:
                self._forward_pending()
                self._reap()
                if self.stopping and not any(slot.alive() for slot in self.slots):
                    break
                self._restart_due()
                time.sleep(_POLL)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            for slot in self.slots:  # only reached alive if spawning itself failed
                if slot.alive() and slot.child is not None:
                    slot.child.terminate()
        return 1 if self.gave_up or not self._clean() else 0

    def _on_signal(self, signum: int, _frame: FrameType | None = None) -> None:
        self.stopping = True
        self.pending.append(signum)

    def _forward_pending(self) -> None:
        while self.pending:
            self._send(self.pending.pop(0))

    def _send(self, signum: int) -> None:
        self.forwarded.add(signum)
        for slot in self.slots:
            if slot.alive() and slot.child is not None:
                # One that died since it was polled is seen by the next poll.
                with contextlib.suppress(ProcessLookupError):
                    slot.child.send_signal(signum)

    def _spawn(self, slot: _Slot) -> None:
        slot.restart_at = None
        if self.stopping:
            return
        slot.child = subprocess.Popen(self.argv, start_new_session=True, env=self.env)
        slot.started_at = time.monotonic()
        if slot.replaces is not None:
            logger.info("restarted worker process %d as %d", slot.replaces, slot.child.pid)
            slot.replaces = None

    def _reap(self) -> None:
        for slot in self.slots:
            child = slot.child
            if child is None or slot.final is not None or child.poll() is None:
                continue
            if self.stopping:
                slot.final = child.returncode
                if not self._clean_exit(child.returncode):
                    logger.warning("worker process %d %s", child.pid, _status(child.returncode))
            else:
                self._died(slot, child)

    def _died(self, slot: _Slot, child: subprocess.Popen[bytes]) -> None:
        how = f"worker process {child.pid} {_status(child.returncode)}"
        slot.replaces = child.pid
        slot.child = None
        self._schedule_restart(slot, how, final=child.returncode)

    def _schedule_restart(self, slot: _Slot, how: str, *, final: int) -> None:
        """Restart `slot` after its backoff, or give up when the budget is spent."""
        now = time.monotonic()
        if not self.budget.spend(now=now):
            count = self.budget.recent(now=now) + 1
            logger.error(
                "%s; restarting it would make %d restarts within a minute, more than "
                "--max-restarts %d allows: stopping the others",
                how,
                count,
                self.max_restarts,
            )
            self.gave_up = True
            slot.final = final
            self.stopping = True
            self._send(signal.SIGTERM)
            return
        delay = slot.backoff.next_delay(ran_for=now - slot.started_at)
        logger.warning("%s; restarting it in %gs", how, delay)
        slot.restart_at = now + delay

    def _restart_due(self) -> None:
        now = time.monotonic()
        for slot in self.slots:
            if slot.restart_at is not None and slot.restart_at <= now:
                try:
                    self._spawn(slot)
                except OSError as exc:  # no fork or exec now (e.g. EAGAIN): a death too
                    slot.started_at = time.monotonic()
                    how = f"restarting worker process {slot.replaces} failed ({exc})"
                    self._schedule_restart(slot, how, final=1)

    def _clean_exit(self, returncode: int) -> bool:
        # A child that had not yet installed its handlers dies of the forwarded signal itself;
        # it had claimed nothing, so that is a clean stop too.
        return returncode == 0 or -returncode in self.forwarded

    def _clean(self) -> bool:
        return all(s.final is None or self._clean_exit(s.final) for s in self.slots)


def _status(returncode: int) -> str:
    if returncode >= 0:
        return f"exited with code {returncode}"
    try:
        name = signal.Signals(-returncode).name
    except ValueError:
        name = f"signal {-returncode}"
    return f"was killed by {name}"


def supervise(argv: list[str], count: int, *, max_restarts: int = DEFAULT_MAX_RESTARTS) -> int:
    """Run `count` copies of `argv`, restarting any that dies, until a signal stops them;
    return 0 if every one then exited cleanly, 1 if one did not or the restarts ran out."""
    return _Supervisor(argv, count, max_restarts=max_restarts).run()


def watch_supervisor() -> None:
    """In a child of `supervise`: once the supervisor is gone, drain as on SIGTERM.

    The child polls its parent's pid (portable; a dead parent's children are handed to init or
    a subreaper) and sends itself SIGTERM, so the drain is exactly the one a signal starts. The
    variable is removed from the environment, so that a job's subprocesses do not inherit it.
    """
    value = os.environ.pop(SUPERVISOR_PID_ENV, None)
    if value is None:
        return
    try:
        supervisor = int(value)
    except ValueError:
        supervisor = 0
    if supervisor <= 1:
        raise CliError(f"{SUPERVISOR_PID_ENV} must be the supervisor's process id, got {value!r}")

    def watch() -> None:
        while os.getppid() == supervisor:
            time.sleep(_WATCH_INTERVAL)
        logger.warning(
            "supervisor %d is gone: worker process %d drains and exits", supervisor, os.getpid()
        )
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="joobq-supervisor-watch", daemon=True).start()
