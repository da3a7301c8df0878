"""What a failed run becomes: its error details (kept on the job and in the error monitor) and
the one state change the store applies, for threaded and async queues alike."""

from __future__ import annotations

import logging

from ..job import Job
from ..settings import Settings
from ..store.records import Failure, JobRecord
from .error_details import error_details
from .error_monitor import ErrorMonitor
from .retry import is_retryable, retry_delay
from .timeouts import JobTimeout

logger = logging.getLogger("joobq_sql.worker")


def failure_of_run(
    record: JobRecord,
    job_class: type[Job],
    exc: BaseException,
    *,
    worker_id: str,
    settings: Settings,
    errors: ErrorMonitor,
    cancelled: bool = False,
) -> Failure:
    """The Failure of `record`'s run that raised `exc`: dead when it was cancelled or `exc` is
    not worth retrying, else retried after the class's (or JoobQ's) backoff."""
    details = error_details(
        exc,
        jid=record.jid,
        queue=record.queue,
        job_type=record.job_type,
        attempt=record.attempt,
        worker_id=worker_id,
    )
    errors.record(details)
    logger.info(
        "job %s (%s) attempt %d failed: %s: %s",
        record.jid,
        record.job_type,
        record.attempt,
        type(exc).__qualname__,
        exc,
    )
    if cancelled:
        return Failure(record.jid, record.attempt, worker_id, details, None, "cancelled")
    if not isinstance(exc, JobTimeout) and not is_retryable(job_class, exc):
        reason = f"not retryable: {type(exc).__qualname__}: {exc}"[:500]
        return Failure(record.jid, record.attempt, worker_id, details, None, reason)
    try:
        delay = retry_delay(
            job_class,
            record.attempt,
            jitter=settings.retry_jitter,
            max_backoff=settings.max_backoff,
        )
    except Exception as backoff_error:  # a broken custom backoff must not lose the job
        logger.warning(
            "%s.backoff failed (%s); using JoobQ's schedule", job_class.__qualname__, backoff_error
        )
        delay = retry_delay(Job, record.attempt, max_backoff=settings.max_backoff)
    return Failure(record.jid, record.attempt, worker_id, details, delay)
