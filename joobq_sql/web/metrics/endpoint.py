"""GET /metrics: the queues' state and totals, the jobs table's health, and this process's
perform and claim histograms, in Prometheus's text format."""

from __future__ import annotations

from collections.abc import Mapping

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from ...store.records import QueueStats
from ..context import WebContext, blocking, web_context
from ..unavailable import DATABASE_UNAVAILABLE, retry_after, unreachable_reason
from .database import DatabaseHealth, database_health
from .exposition import CONTENT_TYPE, Family, render

STATES = ("waiting", "due_later", "running", "retrying", "dead", "completed")

#: (metric, help, the queue_stats totals it adds up)
COUNTERS = (
    ("joobq_jobs_completed_total", "Jobs that completed.", ("completed",)),
    (
        "joobq_jobs_failed_total",
        "Failed runs: the retried ones plus the ones that went dead.",
        ("retried", "dead"),
    ),
    ("joobq_jobs_retried_total", "Failed runs that were scheduled for a retry.", ("retried",)),
    ("joobq_jobs_dead_total", "Jobs that failed for good (dead letter).", ("dead",)),
    ("joobq_jobs_expired_total", "Jobs that expired before they ran.", ("expired",)),
    (
        "joobq_leases_rescued_total",
        "Running jobs whose lease expired and were rescued.",
        ("rescued",),
    ),
)


def queue_families(stats: Mapping[str, QueueStats], paused: set[str]) -> list[Family]:
    depth = Family("joobq_queue_jobs", "gauge", "Jobs in the jobs table now, by queue and state.")
    oldest = Family(
        "joobq_queue_oldest_waiting_age_seconds",
        "gauge",
        "Seconds the oldest runnable job of the queue has waited (0 when none waits).",
    )
    paused_family = Family("joobq_queue_paused", "gauge", "1 when the queue is paused.")
    # A gauge of its own rather than a label on joobq_queue_jobs: a label that flips as a
    # backlog crosses the exact limit would end one series and start another.
    estimated = Family(
        "joobq_queue_jobs_estimated",
        "gauge",
        "1 when the queue's joobq_queue_jobs figures, all but state running, are estimates "
        "(a state with very many jobs is not counted one by one).",
    )
    counters = [Family(name, "counter", help) for name, help, _ in COUNTERS]
    for queue in sorted(stats.keys() | paused):
        s = stats.get(queue) or QueueStats(queue=queue)
        labels = {"queue": queue}
        for state in STATES:
            depth.add(getattr(s, state), {**labels, "state": state})
        oldest.add(s.oldest_waiting_age or 0.0, labels)
        paused_family.add(int(queue in paused), labels)
        estimated.add(int(s.estimated), labels)
        for family, (_, _, parts) in zip(counters, COUNTERS, strict=True):
            family.add(sum(s.totals[part] for part in parts), labels)
    return [depth, oldest, paused_family, estimated, *counters]


def database_families(health: DatabaseHealth) -> list[Family]:
    families = []
    if health.jobs_dead_tuples is not None:
        dead = Family(
            "joobq_jobs_table_dead_tuples",
            "gauge",
            "Dead tuples on the jobs table (pg_stat_user_tables.n_dead_tup).",
        )
        dead.add(health.jobs_dead_tuples)
        families.append(dead)
    oldest = Family(
        "joobq_oldest_transaction_age_seconds",
        "gauge",
        "Age of the oldest open transaction on the database (pg_stat_activity), 0 when none.",
    )
    oldest.add(health.oldest_transaction_age or 0.0)
    families.append(oldest)
    return families


def _collect(context: WebContext) -> tuple[dict[str, QueueStats], set[str], DatabaseHealth]:
    store = context.store
    return store.queue_stats(), store.paused_queues(), database_health(store)


async def metrics(request: Request) -> Response:
    context = web_context(request)
    try:
        stats, paused, health = await blocking(_collect, context)
    except Exception as exc:
        reason = (
            unreachable_reason(exc)
            if isinstance(exc, DATABASE_UNAVAILABLE)
            else f"cannot read the database: {type(exc).__name__}"
        )
        return PlainTextResponse(reason, status_code=503, headers=retry_after())
    families = [
        *queue_families(stats, paused),
        *database_families(health),
        *context.run_metrics.families(),
    ]
    return PlainTextResponse(render(families), media_type=CONTENT_TYPE)
