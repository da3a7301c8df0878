"""The JSON form of jobs and queues that the API returns."""

from __future__ import annotations

from typing import Any

from ..store.records import JobRecord, QueueStats


def job_json(record: JobRecord) -> dict[str, Any]:
    """A job as the API shows it: the seed's job document, plus when it last changed."""
    document = record.to_document()
    document["updated_at"] = record.updated_at.isoformat()
    document["unique_key"] = record.unique_key
    document["cancel_requested"] = record.cancel_requested_at is not None
    return document


def page_json(
    records: list[JobRecord], *, limit: int, offset: int, **filters: Any
) -> dict[str, Any]:
    """One page of jobs; `next_offset` is None on the last page."""
    return {
        "jobs": [job_json(r) for r in records],
        "limit": limit,
        "offset": offset,
        "next_offset": offset + limit if len(records) == limit else None,
        **{k: v for k, v in filters.items() if v is not None},
    }


def queue_json(
    name: str, stats: QueueStats | None, *, paused: bool, workers: int | None
) -> dict[str, Any]:
    """A queue's counts now, its running totals, and whether it is paused."""
    s = stats or QueueStats(queue=name)
    return {
        "queue": name,
        "paused": paused,
        "workers": workers,
        "waiting": s.waiting,
        "due_later": s.due_later,
        "running": s.running,
        "retrying": s.retrying,
        "dead": s.dead,
        "completed": s.completed,
        "oldest_waiting_age": s.oldest_waiting_age,
        "totals": dict(s.totals),
        # True when the counts but running are estimates (store/postgres/queue_stats.py)
        "estimated": s.estimated,
    }
