"""The REST API under /joobq: one table of endpoints, from which both the routes and the
OpenAPI document are made, so the two cannot disagree."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..paths import RawPathRoute
from . import enqueue, errors, health, jobs, queues, registry, schedules

Endpoint = Callable[[Request], Awaitable[Response]]

# Query parameters, by name: (description, JSON schema).
QUEUE = ("Only jobs of this queue.", {"type": "string", "maxLength": 100})
LIMIT = ("Page size, 1..500.", {"type": "integer", "minimum": 1, "maximum": 500, "default": 50})
OFFSET = ("Jobs to skip, 0..1000000.", {"type": "integer", "minimum": 0, "default": 0})
STATUS = (
    "Only jobs in this state.",
    {"enum": ["enqueued", "scheduled", "running", "retrying", "completed", "dead"]},
)
JOB_TYPE = ("Only jobs of this job type.", {"type": "string"})
WINDOW = (
    "Look-back window: seconds, or a duration such as '15m' (default: error_window).",
    {"type": "string", "example": "5m"},
)
PAGE = {"queue": QUEUE, "limit": LIMIT, "offset": OFFSET}
WINDOWED = {"window": WINDOW}


@dataclass(frozen=True)
class ApiEndpoint:
    method: str
    path: str
    endpoint: Endpoint
    summary: str
    query: dict[str, tuple[str, dict[str, Any]]] | None = None
    statuses: tuple[int, ...] = (200,)
    #: False for an endpoint that answers from this process alone: it cannot answer 503.
    database: bool = True


ENDPOINTS: tuple[ApiEndpoint, ...] = (
    ApiEndpoint("POST", "/joobq/jobs", enqueue.enqueue, "Enqueue a job", None,
                (200, 201, 400, 409, 413, 422)),
    ApiEndpoint("GET", "/joobq/jobs", jobs.list_jobs, "Search jobs, newest first",
                {**PAGE, "status": STATUS, "job_type": JOB_TYPE}, (200, 422)),
    ApiEndpoint("GET", "/joobq/jobs/registry", registry.job_registry,
                "Job types this process knows, with the JSON schema of their args",
                database=False),
    ApiEndpoint("GET", "/joobq/jobs/retrying", jobs.retrying_jobs,
                "Jobs waiting for a retry", PAGE, (200, 422)),
    ApiEndpoint("GET", "/joobq/jobs/dead", jobs.dead_jobs, "The dead letter", PAGE, (200, 422)),
    ApiEndpoint("GET", "/joobq/jobs/{jid}", jobs.get_job,
                "One job, with its error history", None, (200, 404, 422)),
    ApiEndpoint("DELETE", "/joobq/jobs/{jid}", jobs.delete_job,
                "Delete a job in any state", None, (200, 404, 422)),
    ApiEndpoint("POST", "/joobq/jobs/{jid}/retry", jobs.retry_job,
                "Re-drive a dead job (fresh retry budget), or run a waiting retry now", None,
                (200, 404, 409, 422)),
    ApiEndpoint("POST", "/joobq/jobs/{jid}/cancel", jobs.cancel_job,
                "Cancel a waiting job, or ask a running one to stop", None,
                (200, 404, 409, 422)),
    ApiEndpoint("GET", "/joobq/queues", queues.list_queues,
                "Queues: counts now, totals, paused"),
    ApiEndpoint("POST", "/joobq/queues/{queue}/pause", queues.pause_queue,
                "Pause a queue in every worker", None, (200, 422)),
    ApiEndpoint("POST", "/joobq/queues/{queue}/resume", queues.resume_queue,
                "Resume a paused queue", None, (200, 422)),
    ApiEndpoint("POST", "/joobq/queues/{queue}/reprocess", queues.reprocess_queue,
                "Re-drive every dead job of the queue", None, (200, 422)),
    ApiEndpoint("DELETE", "/joobq/queues/{queue}/dead", queues.purge_dead,
                "Delete every dead job of the queue", None, (200, 422)),
    ApiEndpoint("GET", "/joobq/schedules", schedules.list_schedules,
                "Schedules with their last tick and next run"),
    ApiEndpoint("GET", "/joobq/health/check", health.health_check,
                "Ask the database for its clock", None, (200, 503)),
    ApiEndpoint("GET", "/joobq/errors/stats", errors.error_stats,
                "Errors within the window: totals by type, queue and job type", WINDOWED,
                (200, 422)),
    ApiEndpoint("GET", "/joobq/errors/recent", errors.recent_errors, "The newest errors",
                {**WINDOWED, "limit": LIMIT}, (200, 422)),
    ApiEndpoint("GET", "/joobq/errors/by-type", errors.errors_by_type,
                "Errors within the window by error type", WINDOWED, (200, 422)),
    ApiEndpoint("GET", "/joobq/errors/by-queue", errors.errors_by_queue,
                "Errors within the window by queue", WINDOWED, (200, 422)),
)  # fmt: skip


def api_routes() -> list[Route]:
    """One route per path, so that a 405 lists every method the path allows."""
    by_path: dict[str, dict[str, Endpoint]] = {}
    for e in ENDPOINTS:
        by_path.setdefault(e.path, {})[e.method] = e.endpoint
    return [
        RawPathRoute(path, _by_method(methods), methods=list(methods))
        for path, methods in by_path.items()
    ]


def _by_method(endpoints: dict[str, Endpoint]) -> Endpoint:
    if len(endpoints) == 1:
        return next(iter(endpoints.values()))

    async def dispatch(request: Request) -> Response:
        return await endpoints[request.method if request.method != "HEAD" else "GET"](request)

    return dispatch
