"""The states a job moves through. Lower-case only: JoobQ mixed cases, we do not."""

from __future__ import annotations

from enum import StrEnum


class JobStatus(StrEnum):
    ENQUEUED = "enqueued"  # waiting, runnable now
    SCHEDULED = "scheduled"  # waiting for its run_at (delayed, or set by schedule())
    RUNNING = "running"  # claimed by a worker that holds a lease on it
    RETRYING = "retrying"  # failed, waiting for its backoff to pass
    COMPLETED = "completed"  # finished; only kept when completed-job retention is asked for
    DEAD = "dead"  # out of retries, expired, or unrunnable; purged at dead_expires_at


#: States in which a job waits to be claimed once its run_at has passed.
RUNNABLE_STATUSES: tuple[JobStatus, ...] = (
    JobStatus.ENQUEUED,
    JobStatus.SCHEDULED,
    JobStatus.RETRYING,
)

#: States from which a job can never run again.
FINAL_STATUSES: tuple[JobStatus, ...] = (JobStatus.COMPLETED, JobStatus.DEAD)
