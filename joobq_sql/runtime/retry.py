"""What happens after a failed run: retry after a backoff, or give up (dead).

The decision is made once, here, and applied by the store in one fenced statement, so a
failure makes exactly one state change (JoobQ's defect 1 was two handlers each acting on it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..backoff import exponential_backoff

if TYPE_CHECKING:
    from ..job import Job


def is_retryable(job_class: type[Job], exc: BaseException) -> bool:
    """False when the job class marks `exc` as not worth retrying (``discard_on``)."""
    return not isinstance(exc, tuple(job_class.discard_on))


def retry_delay(
    job_class: type[Job], attempt: int, *, jitter: float = 0.0, max_backoff: float = 3600.0
) -> float:
    """Seconds before the next run after failed run `attempt`: the class's own ``backoff``
    when it defines one, else JoobQ's min(2^(attempt-1), 1 h), with `jitter` applied."""
    custom = job_class.backoff(attempt)
    if custom is not None:
        delay = float(custom)
        if delay < 0 or delay != delay:
            raise ValueError(
                f"{job_class.__qualname__}.backoff({attempt}) returned {custom!r}; "
                "it must be a number of seconds >= 0"
            )
        return delay
    return min(exponential_backoff(attempt, jitter=jitter), max_backoff)
