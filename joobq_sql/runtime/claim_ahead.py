"""How many jobs a queue runner may claim ahead of its free slots, from how long its runs last.

A claim is one round trip whatever its size, so a queue of short jobs drains fast only if one
claim serves many runs; but a job claimed ahead waits in this process, and must not wait behind
a long run while another worker could start it. The rule, per queue runner:

- it keeps an estimate of a run's duration: an exponentially weighted mean of the runs that
  finished (weight `ALPHA` for the newest), none before the first;
- while runs are *short* (the estimate at most `SHORT_SHARE` of `budget`, the `claim_ahead`
  setting: 5 ms of the default 50 ms), it may hold, beyond its free slots, as many jobs as its
  usable slots are expected to start within `budget`: budget x usable slots / estimate, at
  least ten per slot and at most two batches (one claimed while the last is worked through);
  none while there is no estimate, and none for longer runs, which are claimed one per free
  slot as with no claiming ahead (a round trip per run costs them little);
- a run that has lasted longer than `budget` beyond the estimate is *long*: its slot is not
  usable. While a run is long, the buffered jobs beyond what the other slots may hold are
  handed back (QueueRunner releases them, no retry spent). So a buffered job waits at most
  about twice `budget` beyond its turn before it is either started or handed on.

Jobs of 50 us and a 50 ms budget: 1000 per slot, so two full batches. Jobs of 1 ms: 50 per
slot. Jobs of 10 ms or a second: none ahead.
"""

from __future__ import annotations

from collections.abc import Iterable

#: Weight of the newest run in the estimate: about the last ten runs count.
ALPHA = 0.2
#: The estimate is never taken below this, so that the allowance stays finite.
MIN_ESTIMATE = 1e-5
#: Runs are short, and claimed ahead, while the estimate is at most this share of the budget.
SHORT_SHARE = 0.1


class ClaimAhead:
    """The claim-ahead allowance of one queue runner (not thread-safe: the runner calls it
    under its lock)."""

    def __init__(self, *, budget: float, workers: int, batch: int) -> None:
        if budget < 0:
            raise ValueError(f"claim-ahead budget must be >= 0 s, got {budget!r}")
        if workers < 1 or batch < 1:
            raise ValueError(f"workers and batch must be >= 1, got {workers!r} and {batch!r}")
        self.budget = budget
        self.workers = workers
        self.cap = 2 * batch
        #: Estimated seconds per run; None until a run has finished.
        self.estimate: float | None = None
        #: Runs in progress for longer than the budget, as last counted.
        self.long = 0

    def ran(self, seconds: float) -> None:
        """A run finished after `seconds`."""
        estimate = self.estimate
        self.estimate = seconds if estimate is None else estimate + ALPHA * (seconds - estimate)

    def count_long(self, starts: Iterable[float], now: float) -> int:
        """Count the runs (by monotonic start time) that have lasted longer than the budget
        beyond the estimate."""
        if self.budget <= 0:
            self.long = 0
        else:
            since = now - self.budget - (self.estimate or 0.0)
            self.long = sum(1 for started in starts if started < since)
        return self.long

    def allowed(self) -> int:
        """Jobs that may be claimed beyond the free slots now."""
        if self.budget <= 0 or self.estimate is None or self.estimate > self.budget * SHORT_SHARE:
            return 0
        usable = self.workers - self.long
        if usable <= 0:
            return 0
        per_run = max(self.estimate, MIN_ESTIMATE)
        return min(self.cap, int(self.budget * usable / per_run))

    def keep(self, starts: Iterable[float], now: float, *, prefetch: int) -> int | None:
        """While a run is long, how many buffered jobs may stay (`prefetch` always may); None
        when no run is long, and nothing is to be handed back."""
        if not self.count_long(starts, now):
            return None
        return prefetch + self.allowed()

    def check_within(self, poll: float, buffered: object) -> float:
        """How long the fetcher may sleep: while jobs are buffered (`buffered` is truthy), at
        most half the budget, so that a run turning long is noticed in time."""
        if buffered and self.budget > 0:
            return min(poll, self.budget / 2)
        return poll
