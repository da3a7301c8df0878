"""Claimed jobs a worker cannot run, and the rules for handing them back.

A worker cannot run a job when no Job class of its process registers the job's job_type, or
when the stored args do not fit the class (a missing, unknown or mistyped field). During a
rolling deploy that is normal: an old worker claims a job of a type, or with a field, that only
the new code knows. So the job is handed back for a worker that can run it (see
Store.hand_back_jobs): its retry budget is not charged, it is due again after a backoff that
grows with the time it has been unrunnable, and only once it has been unrunnable for the grace
(`unrunnable_grace`, default an hour) does it go dead, with a reason that says so.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from .records import bound_error

#: How long a job may stay unrunnable before it goes dead, unless configured otherwise.
DEFAULT_UNRUNNABLE_GRACE = 3600.0
#: The first hand-back's backoff; each later one waits as long as the job has been unrunnable
#: (so the waits double: 1 s, 2 s, 4 s, ...), at most UNRUNNABLE_MAX_BACKOFF.
UNRUNNABLE_MIN_BACKOFF = 1.0
#: The longest wait between two claims of an unrunnable job: a worker that knows it picks it
#: up within a minute of starting, and a job no worker knows costs a claim a minute at most.
UNRUNNABLE_MAX_BACKOFF = 60.0


@dataclass(frozen=True, slots=True)
class HandBack:
    """A claimed job this worker cannot run, to be handed back (fenced like a Failure: it
    applies only while the row still runs `attempt` for `worker_id`). `reason` says why, e.g.
    "no Job class registers job_type 'X'"; `error` is the error entry recorded with it."""

    jid: UUID
    attempt: int
    worker_id: str
    job_type: str
    reason: str
    error: Mapping[str, Any]

    def __post_init__(self) -> None:
        if not isinstance(self.jid, UUID):
            raise TypeError(f"jid must be a UUID, got {self.jid!r}")
        object.__setattr__(self, "error", bound_error(self.error))


def unrunnable_dead_reason(reason: str, grace: float) -> str:
    """The dead_reason of a job that stayed unrunnable for `grace` seconds."""
    if grace <= 0:
        return f"unrunnable: {reason}"
    return f"unrunnable for longer than {duration_text(grace)}: {reason}"


def duration_text(seconds: float) -> str:
    """A duration as people write it: 3600 -> '1h', 5400 -> '1h30m', 0.3 -> '0.3s'."""
    if not math.isfinite(seconds) or seconds < 60 or seconds != int(seconds):
        return f"{seconds:g}s"
    rest = int(seconds)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, rest = divmod(rest, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def checked_hand_backs(hand_backs: Any) -> list[HandBack]:
    """`hand_backs` as a list, each one a HandBack (TypeError names what is not)."""
    out = list(hand_backs)
    for item in out:
        if not isinstance(item, HandBack):
            raise TypeError(f"hand_back_jobs takes HandBack values, got {item!r}")
    return out


def checked_grace(grace: float | None, default: float) -> float:
    """The grace in seconds: `default` when None, else a finite number >= 0."""
    if grace is None:
        grace = default
    if isinstance(grace, bool) or not isinstance(grace, int | float) or not 0 <= grace < math.inf:
        raise ValueError(f"grace must be a number of seconds >= 0, got {grace!r}")
    return float(grace)
