"""Schedule definitions: every(interval) and cron(pattern, tz), each with a misfire policy.

A schedule produces tick instants that every process computes identically (interval ticks are
aligned to the Unix epoch; cron ticks follow the pattern in its timezone), so a tick is a key
the database can make unique: each tick enqueues exactly one job, whichever process gets there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .. import _validation as check
from ..errors import ConfigurationError
from .cron import CronExpression
from .intervals import UNIX_EPOCH, interval_ticks, parse_interval

if TYPE_CHECKING:
    from ..job import Job

MISFIRE_POLICIES = ("skip", "catch_up")


@dataclass(frozen=True)
class Schedule:
    """One recurring schedule: `job_class(**fields)` at every tick.

    Misfire policy, for ticks missed: older than the grace period when a scheduler first gets
    to them, because none ran, or the one running stalled (see misfire.py). "skip" drops them
    and resumes at the next tick; "catch_up" enqueues the latest `catch_up_limit` of them at
    once, oldest first, then resumes.
    """

    name: str
    job_class: type[Job]
    fields: dict[str, Any]
    misfire: str = "skip"
    catch_up_limit: int = 1
    interval: float | None = None
    cron: CronExpression | None = field(default=None)

    def __post_init__(self) -> None:
        try:  # its NFC form, under the rules of names (_validation.py), however it was built
            object.__setattr__(self, "name", check.schedule_name(self.name))
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(str(exc)) from None
        if self.misfire not in MISFIRE_POLICIES:
            raise ConfigurationError(
                f"schedule {self.name!r}: misfire must be one of {MISFIRE_POLICIES}, "
                f"got {self.misfire!r}"
            )
        if isinstance(self.catch_up_limit, bool) or not isinstance(self.catch_up_limit, int):
            raise ConfigurationError(f"schedule {self.name!r}: catch_up_limit must be an int")
        if self.catch_up_limit < 1:
            raise ConfigurationError(
                f"schedule {self.name!r}: catch_up_limit must be >= 1, got {self.catch_up_limit}"
            )

    @classmethod
    def every(cls, interval: Any, job_class: type[Job], **options: Any) -> Schedule:
        return cls(interval=parse_interval(interval), job_class=job_class, **options)

    @classmethod
    def cron_pattern(cls, pattern: str, tz: str, job_class: type[Job], **options: Any) -> Schedule:
        return cls(cron=CronExpression(pattern, tz), job_class=job_class, **options)

    def ticks(self, after: datetime, until: datetime, limit: int) -> list[datetime]:
        """The ticks in (after, until], oldest first, at most `limit`."""
        if self.cron is not None:
            return self.cron.ticks_between(after, until, limit)
        assert self.interval is not None
        return [t for t in interval_ticks(UNIX_EPOCH, self.interval, after, limit) if t <= until]

    def describe(self) -> str:
        if self.cron is not None:
            return f"cron {self.cron.pattern!r} ({self.cron.tz})"
        return f"every {self.interval:g}s"
