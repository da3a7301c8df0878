"""JoobQ's retry schedule: after the Nth failed run, wait min(2^(N-1) s, 1 h): 1 s, 2 s, 4 s..."""

from __future__ import annotations

import random

MAX_BACKOFF_SECONDS = 3600.0


def exponential_backoff(attempt: int, *, jitter: float = 0.0) -> float:
    """Seconds to wait before the run after failed run number `attempt` (1-based).

    `jitter` in [0, 1] spreads retries of jobs that failed together: the delay is drawn from
    [delay * (1 - jitter), delay].
    """
    if attempt < 1:
        raise ValueError(f"attempt must be >= 1, got {attempt}")
    if not 0.0 <= jitter <= 1.0:
        raise ValueError(f"jitter must be within 0..1, got {jitter}")
    delay = min(2.0 ** min(attempt - 1, 32), MAX_BACKOFF_SECONDS)
    if jitter:
        delay *= 1.0 - jitter * random.random()
    return delay
