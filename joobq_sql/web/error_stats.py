"""Error statistics computed from the database, for every process to agree on.

The runtime's ErrorMonitor only sees the failures of its own process; the API instead reads the
error history stored on the jobs that failed (the `errors` of retrying and dead jobs) and keeps
the entries whose `failed_at` falls within the window. An entry without `failed_at` (a lease
rescue writes none) counts at the job's last change when it is the job's latest error, and is
left out otherwise. At most `max_jobs` jobs per state are read, newest first; `truncated` says
when more exist.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from ..status import JobStatus
from ..store.base import Store
from ..store.records import JobRecord

SCANNED_STATUSES = (JobStatus.RETRYING, JobStatus.DEAD)
PAGE_SIZE = 500
MAX_JOBS_PER_STATUS = 5000


@dataclass(frozen=True)
class ErrorEntry:
    """One stored error entry of one job, with the time it happened."""

    at: datetime
    record: JobRecord
    details: dict[str, Any]

    @property
    def error_type(self) -> str:
        return str(self.details.get("error_type") or "unknown")

    def to_json(self) -> dict[str, Any]:
        details = {k: v for k, v in self.details.items() if k != "failed_at"}
        return {
            **details,
            "jid": str(self.record.jid),
            "queue": self.record.queue,
            "job_type": self.record.job_type,
            "job_status": self.record.status.value,
            "error_type": self.error_type,
            "failed_at": self.at.isoformat(),
        }


@dataclass
class ErrorScan:
    """The errors within `window` seconds before `now`, newest first."""

    now: datetime
    window: float
    entries: list[ErrorEntry] = field(default_factory=list)
    jobs_scanned: int = 0
    truncated: bool = False

    def by_type(self) -> dict[str, int]:
        return dict(Counter(e.error_type for e in self.entries).most_common())

    def by_queue(self) -> dict[str, int]:
        return dict(Counter(e.record.queue for e in self.entries).most_common())

    def by_job_type(self) -> dict[str, int]:
        return dict(Counter(e.record.job_type for e in self.entries).most_common())

    def summary(self) -> dict[str, Any]:
        return {
            "window": self.window,
            "since": (self.now - timedelta(seconds=self.window)).isoformat(),
            "total": len(self.entries),
            "jobs_scanned": self.jobs_scanned,
            "truncated": self.truncated,
        }


def scan_errors(store: Store, window: float, *, max_jobs: int = MAX_JOBS_PER_STATUS) -> ErrorScan:
    """Read the error history of retrying and dead jobs; keep the entries within `window`."""
    now = store.now()
    scan = ErrorScan(now=now, window=window)
    since = now - timedelta(seconds=window)
    for status in SCANNED_STATUSES:
        offset = 0
        while offset < max_jobs:
            limit = min(PAGE_SIZE, max_jobs - offset)
            page = store.search_jobs(status=status, offset=offset, limit=limit)
            scan.jobs_scanned += len(page)
            for record in page:
                scan.entries.extend(_entries_since(record, since))
            offset += len(page)
            if len(page) < limit:
                break
        else:
            scan.truncated = bool(store.search_jobs(status=status, offset=max_jobs, limit=1))
    scan.entries.sort(key=lambda e: e.at, reverse=True)
    return scan


def _entries_since(record: JobRecord, since: datetime) -> list[ErrorEntry]:
    found = []
    last = len(record.errors) - 1
    for index, details in enumerate(record.errors):
        if not isinstance(details, dict):
            continue
        at = _parse_time(details.get("failed_at"))
        if at is None and index == last:
            at = record.updated_at
        if at is not None and at > since:
            found.append(ErrorEntry(at=at, record=record, details=details))
    return found


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None
