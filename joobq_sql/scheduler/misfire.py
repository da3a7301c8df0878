"""Misfires: what a schedule does with the ticks it reached too late.

A tick is on time while it is at most the grace period old when a scheduler first gets to it;
an older one was missed (no scheduler ran, every pass failed, the process was paused), and the
schedule's misfire policy decides: "skip" drops the missed ticks, "catch_up" keeps the latest
`catch_up_limit` of them. The same rule holds at start-up and at any later pass.
"""

from __future__ import annotations

import logging
from collections import deque
from datetime import datetime, timedelta

from .intervals import UNIX_EPOCH, interval_ticks
from .schedules import Schedule

logger = logging.getLogger("joobq_sql.scheduler")

_MICROSECOND = timedelta(microseconds=1)
_PAGE = 1000


def resume_after(schedule: Schedule, last: datetime, now: datetime, grace: timedelta) -> datetime:
    """The cursor `schedule` resumes from (its next ticks are those strictly after it), given
    that every tick up to `last` was offered already and the time is `now`.

    Ticks in (last, now - grace] were missed: skipped, or the latest `catch_up_limit` of them
    kept; ticks younger than the grace are on time and stay due either way.
    """
    horizon = now - grace
    missed = schedule.ticks(last, horizon, 1)
    if not missed:
        return last
    if schedule.misfire == "catch_up":
        keep = latest_ticks(schedule, last, horizon, schedule.catch_up_limit)
        logger.info(
            "schedule %r: missed its ticks from %s; catching up the latest %d (from %s)",
            schedule.name,
            missed[0].isoformat(),
            len(keep),
            keep[0].isoformat(),
        )
        return keep[0] - _MICROSECOND
    logger.info(
        "schedule %r: skipping the ticks it missed from %s to %s",
        schedule.name,
        missed[0].isoformat(),
        horizon.isoformat(),
    )
    return horizon


def latest_ticks(
    schedule: Schedule, after: datetime, until: datetime, count: int
) -> list[datetime]:
    """The latest `count` ticks of `schedule` in (after, until], oldest first.

    Found from `until` backwards, so a long outage costs about `count` ticks of work, not one
    per tick missed.
    """
    if schedule.interval is not None:
        return _latest_interval_ticks(schedule.interval, after, until, count)
    window = timedelta(seconds=count)  # a cron schedule ticks at most once a second
    while True:
        start = until - window if until - after > window else after
        kept: deque[datetime] = deque(maxlen=count)
        cursor = start
        while True:
            page = schedule.ticks(cursor, until, _PAGE)
            kept.extend(page)
            if len(page) < _PAGE:
                break
            cursor = page[-1]
        if len(kept) == count or start == after:
            return list(kept)
        window *= 2


def _latest_interval_ticks(
    interval: float, after: datetime, until: datetime, count: int
) -> list[datetime]:
    step = max(round(interval * 1_000_000), 1)  # as intervals.py rounds it
    span = (until - after) // _MICROSECOND
    wanted = min(count, span // step + 1)
    start = after if wanted * step >= span else until - wanted * step * _MICROSECOND
    ticks = interval_ticks(UNIX_EPOCH, interval, start, wanted + 1)
    return [t for t in ticks if t <= until][-count:]
