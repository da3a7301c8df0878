"""Throughput over a window, as the dashboard shows it. The numbers come from the database:
the completion statements count completed jobs per queue per minute (queue_throughput)."""

from __future__ import annotations

from dataclasses import dataclass

HORIZON = 3600.0
#: Samples closer together than this replace each other (bounds the memory to ~360 samples).
MIN_SPACING = 10.0


@dataclass(frozen=True)
class Rate:
    """Jobs completed per queue within the last `span` seconds (about an hour once the app has
    sampled that long; longer when nothing sampled for a while)."""

    completed: dict[str, int]
    span: float

    @property
    def total(self) -> int:
        return sum(self.completed.values())

    def per_minute(self, queue: str | None = None) -> float | None:
        if self.span <= 0:
            return None
        count = self.total if queue is None else self.completed.get(queue, 0)
        return count * 60.0 / self.span
