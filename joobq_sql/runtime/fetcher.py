"""Where a job is claimed: the claim loop of a queue runner, written once for both executors.

`Fetcher.run()` is the loop. Each pass it first gives back what an earlier pass could not
(give_backs.py), releases what a claim whose outcome it never saw may have taken, hands on the
buffered jobs that would wait behind a long run (thread executor only), then claims as many
jobs as `ClaimSizer` allows and hands them to its runner (`FetcherHost.hold`). A pass that
raises (the database is away) is retried after a backoff of 0.1 s doubling to 5 s; a claim that
came back full is followed by another at once; else the loop waits for a wake-up (a NOTIFY, a
freed slot, a resume, shutdown) or the poll interval.

The fetcher does no I/O itself: every store call, wait and sleep is a step it yields, and the
runner's executor carries it out (fetch_steps.py): the thread executor on the sync Store in the
fetcher's thread, the async executor on its AsyncStore on the event loop. So the claim's
bookkeeping, and the give-backs that keep a claimed job from being forgotten on any error
path, exist once.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any, Protocol
from uuid import UUID

from ..errors import NothingSentError
from ..settings import Settings
from ..store.records import JobRecord
from .claim_ahead import ClaimAhead
from .fetch_steps import Backoff, ClaimJobs, HandBackJobs, ReleaseJobs, Sleep, Steps, Wait
from .give_backs import GiveBacks, retry_delay

logger = logging.getLogger("joobq_sql.worker")

# -- how many to claim -------------------------------------------------------------------------


class ClaimSizer:
    """How many jobs a runner claims now: for its free slots, plus what ClaimAhead allows while
    runs are short (see claim_ahead.py). With `gather` (the thread executor), while a backlog
    is being drained (`backlog`: the last claim came back full) it waits until a good share of
    a batch is free, so that one claim serves many slots instead of one round trip per
    finished job; with no backlog, any free slot claims at once (low pickup latency). Not
    thread-safe: the runner calls it under its lock."""

    def __init__(
        self, *, workers: int, batch: int, prefetch: int, claim_ahead: float, gather: bool
    ) -> None:
        self.ahead = ClaimAhead(budget=claim_ahead, workers=workers, batch=batch)
        self.workers = workers
        self.batch = batch
        self.prefetch = prefetch
        self.gather = gather
        #: The last claim came back full: more jobs are waiting.
        self.backlog = False

    @classmethod
    def of(cls, settings: Settings, workers: int, *, ahead: bool) -> ClaimSizer:
        """The sizer of a runner of `workers` slots under `settings`: with `ahead` (the thread
        executor) it claims ahead of its slots (claim_ahead, prefetch) and gathers batches
        while a backlog drains; without, it claims only for its free slots."""
        return cls(
            workers=workers,
            batch=settings.worker_batch_size,
            prefetch=settings.prefetch if ahead else 0,
            claim_ahead=settings.claim_ahead if ahead else 0.0,
            gather=ahead,
        )

    def size(self, held: int) -> int:
        """Jobs to claim now while `held` are claimed and not finished (buffered, starting or
        running). ClaimAhead's count of long runs is the one last taken (count_long)."""
        batch = self.batch
        ahead = self.ahead.allowed()
        capacity = self.workers + self.prefetch + ahead
        free = capacity - held
        if free <= 0:
            return 0
        if self.backlog and self.gather:
            # Claiming ahead: claim once half of what may be buffered is free (full batches,
            # the next one claimed while the last is still being worked through); else once
            # a quarter of the slots are.
            need = min(batch, ahead // 2) if ahead else min(batch, capacity) // 4
            if free < max(1, need):
                return 0
        return min(batch, free)

    def count_long(self, starts: Iterable[float], now: float) -> None:
        """Count the runs (by monotonic start time) that have turned out long."""
        self.ahead.count_long(starts, now)

    def keep(self, starts: Iterable[float], now: float, *, idle_slots: int) -> int | None:
        """While a run is long, how many buffered jobs may stay: what ClaimAhead allows, plus
        one per idle slot (a job an idle slot is about to take waits behind nothing); None when
        no run is long."""
        keep = self.ahead.keep(starts, now, prefetch=self.prefetch)
        return None if keep is None else keep + idle_slots

    def wait_within(self, poll: float, buffered: object) -> float:
        """How long the fetcher may wait for a wake-up (see ClaimAhead.check_within)."""
        return self.ahead.check_within(poll, buffered)


# -- the loop ----------------------------------------------------------------------------------


class FetcherHost(Protocol):
    """What the fetcher needs of its runner (runner_core.RunnerCore and its executors)."""

    name: str
    worker_id: str
    settings: Settings
    counters: dict[str, int]

    @property
    def paused(self) -> bool:
        """The queue is paused: claim nothing."""

    @property
    def stopping(self) -> bool:
        """Shutdown began: claim no more."""

    def held_jids(self) -> set[UUID]: ...

    def pending_acks(self) -> set[UUID]:
        """The jids whose outcome the acker has not written yet."""

    def holds_nothing(self) -> bool:
        """Nothing claimed is held: buffered, starting, running, finishing or to give back."""

    def claim_size(self) -> int: ...

    def hold(self, records: list[JobRecord]) -> bool:
        """Take the claimed records (buffer or run them, or hold them to give back); True when
        some are to be given back now."""

    def hand_on(self) -> int:
        """Hold to release the buffered jobs that would wait behind a long run; how many."""

    def wait_time(self) -> float:
        """How long a pass may wait for a wake-up."""


class Fetcher:
    """The claim loop of one queue runner, and the give-backs (see the module docstring)."""

    def __init__(self, host: FetcherHost, give: GiveBacks, sizer: ClaimSizer) -> None:
        self.host = host
        self.give = give
        self.sizer = sizer
        #: A claim sent while the runner held nothing came back empty (or the queue is paused),
        #: and nothing was claimed since (see RunnerCore.drained()).
        self.empty = False

    def run(self) -> Steps[None]:
        """Claim until shutdown (what is left to give back then, the runner settles)."""
        host = self.host
        failures = 0
        while not host.stopping:
            host.counters["passes"] += 1
            try:
                yield from self.give_back()  # what an earlier pass could not; never blocks a claim
                if self.give.unseen_claim:
                    yield from self.release_unseen()  # before claiming again: raises until done
                handed_on = host.hand_on()
                if handed_on:
                    host.counters["handed_on"] += handed_on
                    logger.debug(
                        "queue %r: a run is long; handing back %d jobs", host.name, handed_on
                    )
                    yield from self.give_back(force=True)
                idle = host.holds_nothing()
                want = 0 if host.paused else host.claim_size()
                more = (yield from self.claim(want, idle=idle)) if want else False
                if host.paused and idle:
                    self.empty = True
                failures = 0
            except Exception as exc:
                failures += 1
                delay = retry_delay(failures)
                logger.warning(
                    "claiming from %r failed (%s); retrying in %.2fs", host.name, exc, delay
                )
                yield Backoff(delay)
                continue
            if more:
                continue  # the queue may hold more: claim again before waiting
            yield Wait(host.wait_time())

    def claim(self, want: int, *, idle: bool = False) -> Steps[bool]:
        """Claim up to `want` jobs and hold every one; True if the claim came back full.
        `idle`: the runner held nothing when it decided to claim (see drained()).

        Until each claimed record is held (buffered, running, or waiting to be given back), the
        claim counts as unseen: if claim_jobs raises (its COMMIT may still have happened) or
        anything fails before its records are held, the next pass releases what it may have
        claimed."""
        host = self.host
        self.give.unseen_claim = True
        try:
            records: list[JobRecord] = yield ClaimJobs(
                host.name, host.worker_id, want, host.settings.lease
            )
        except NothingSentError:  # no connection: nothing was claimed
            self.give.unseen_claim = False
            raise
        give_back = host.hold(records)
        self.give.unseen_claim = False
        host.counters["claims"] += 1
        host.counters["claimed"] += len(records)
        self.empty = idle and not records
        self.sizer.backlog = full = len(records) == want
        if give_back:
            yield from self.give_back()
        return full

    def release_unseen(self) -> Steps[None]:
        """Release every running job of this worker in this queue that the runner does not
        hold: what an unseen claim took. Its held jobs are read before the acker's (a finished
        run moves from the one to the other), so no job that ran here is released."""
        host = self.host
        keep = host.held_jids() | host.pending_acks()
        released: list[UUID] = yield ReleaseJobs(host.worker_id, queue=host.name, keep=sorted(keep))
        self.give.unseen_claim = False
        host.counters["released"] += len(released)
        self.give.report_unseen_released(released)

    def give_back(self, *, force: bool = False) -> Steps[bool]:
        """One try at handing back the unrunnable jobs held and releasing the unreleased ones
        (unless a failure's backoff still runs and not `force`); True when it worked."""
        host = self.host
        hand_backs, unreleased = self.give.pending(force=force)
        if not hand_backs and not unreleased:
            return True
        try:
            if hand_backs:
                grace = host.settings.unrunnable_grace
                changed: dict[UUID, Any] = yield HandBackJobs(hand_backs, grace)
                self.give.handed_back(hand_backs)  # absent from `changed`: no longer ours
                host.counters["handed_back"] += len(changed)
            if unreleased:
                released: list[UUID] = yield ReleaseJobs(host.worker_id, unreleased)
                self.give.released(unreleased)
                host.counters["released"] += len(released)
        except Exception as exc:
            self.give.failed("giving back", len(hand_backs) + len(unreleased), exc)
            return False
        self.give.succeeded()
        return True

    def release(self, jids: list[UUID]) -> Steps[None]:
        """Give back claimed jobs that will not start here (shutdown began); if the database
        is away, they stay held (renewed) and the runner's last settle tries again."""
        if jids:
            self.give.hold_unreleased(jids)
            yield from self.give_back(force=True)

    def settle(self, *, tries: int) -> Steps[None]:
        """At shutdown: give back all that is still to give back, up to `tries` times each."""
        for attempt in range(1, tries + 1):
            if not self.give.unseen_claim:
                break
            try:
                yield from self.release_unseen()
            except Exception as exc:
                logger.warning(
                    "queue %r: releasing an unseen claim failed (%s)", self.host.name, exc
                )
                if attempt < tries:
                    yield Sleep(retry_delay(attempt))
        for attempt in range(1, tries + 1):
            if (yield from self.give_back(force=True)):
                break
            if attempt < tries:
                yield Sleep(retry_delay(attempt))
