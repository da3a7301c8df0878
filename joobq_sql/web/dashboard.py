"""The dashboard: server-rendered pages (Jinja2, autoescaped) over the same store calls as the
API. Its buttons call the API from dashboard.js; the pages refresh themselves."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlencode

import jinja2
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from ..app import JoobQ
from ..job import registered_job_types
from ..status import JobStatus
from . import params
from .api.queues import queue_overview
from .api.schedules import schedule_rows
from .context import blocking, web_context
from .errors import ApiError
from .paths import RawPathRoute
from .throughput import Rate

PAGE_SIZE = 50
REFRESH_SECONDS = 5


def _templates() -> Jinja2Templates:
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("joobq_sql.web", "templates"),
        autoescape=True,  # every value is HTML-escaped unless a template says otherwise
        undefined=jinja2.StrictUndefined,
    )
    environment.filters.update(
        age=format_age, when=format_when, pretty=pretty_json, segment=path_segment
    )
    return Jinja2Templates(env=environment)


def format_age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = max(float(seconds), 0.0)
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h {minutes:02d}m"
    return f"{hours // 24}d {hours % 24}h"


def format_when(value: datetime | str | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.strftime("%Y-%m-%d %H:%M:%S %Z").strip()


def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str)


def path_segment(value: Any) -> str:
    """`value` as one URL path segment: every reserved character percent-encoded, '/' too,
    so that "a/b" is one segment (a%2Fb) and "x/../victim" cannot be resolved by a browser
    into another queue's URL. (Jinja's urlencode leaves '/' as it is.)"""
    return quote(str(value), safe="")


templates = _templates()


def render_page(
    request: Request,
    name: str,
    page: str,
    *,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> Response:
    """The template `name` in the dashboard's frame, `page` its active tab."""
    base = request.scope.get("root_path", "")
    return templates.TemplateResponse(
        request,
        name,
        {"base": base, "page": page, "refresh": REFRESH_SECONDS, **context},
        status_code=status_code,
        headers={"Cache-Control": "no-store", **(headers or {})},
    )


async def overview(request: Request) -> Response:
    context = web_context(request)
    data = await blocking(_overview_data, context.app)
    return render_page(request, "overview.html", "overview", **data)


def _overview_data(app: JoobQ) -> dict[str, Any]:
    queues = queue_overview(app)
    per_minute = app.store.completed_per_minute(since=LAST_HOUR)
    # Exact: the completion statements count jobs per queue per minute in the database.
    rate = Rate({queue: sum(minutes.values()) for queue, minutes in per_minute.items()}, LAST_HOUR)
    return {
        "queues": queues,
        "paused": [q["queue"] for q in queues if q["paused"]],
        # Alive: heard from within a few of each worker's own heartbeats (store/presence.py).
        "workers": app.store.live_workers(),
        "rate": rate,
        "now": app.store.now(),
    }


#: Throughput is shown over this window.
LAST_HOUR = 3600.0


async def jobs_page(request: Request) -> Response:
    store = web_context(request).store
    filters = _filters(request)
    page = params.int_param(request, "page", default=1, low=1, high=10_000)
    records = await blocking(
        store.search_jobs,
        queue=filters["queue"],
        status=JobStatus(filters["status"]) if filters["status"] else None,
        job_type=filters["job_type"],
        offset=(page - 1) * PAGE_SIZE,
        limit=PAGE_SIZE + 1,
    )
    queues = sorted((await blocking(store.queue_stats)).keys())
    return render_page(
        request,
        "jobs.html",
        "jobs",
        jobs=records[:PAGE_SIZE],
        filters=filters,
        queues=queues,
        statuses=[s.value for s in JobStatus],
        job_types=sorted(registered_job_types()),
        pager=_pager(request, page, has_next=len(records) > PAGE_SIZE),
    )


async def dead_page(request: Request) -> Response:
    store = web_context(request).store
    queue = params.queue_param(request)
    page = params.int_param(request, "page", default=1, low=1, high=10_000)
    records = await blocking(
        store.search_jobs,
        queue=queue,
        status=JobStatus.DEAD,
        offset=(page - 1) * PAGE_SIZE,
        limit=PAGE_SIZE + 1,
    )
    stats = await blocking(store.queue_stats)
    dead_queues = {name: s.dead for name, s in sorted(stats.items()) if s.dead}
    return render_page(
        request,
        "dead.html",
        "dead",
        jobs=records[:PAGE_SIZE],
        queue=queue,
        dead_queues=dead_queues,
        pager=_pager(request, page, has_next=len(records) > PAGE_SIZE),
    )


async def job_page(request: Request) -> Response:
    jid = params.jid_path(request)
    record = await blocking(web_context(request).store.get_job, jid)
    if record is None:
        raise ApiError(404, f"no job with jid {jid}")
    return render_page(request, "job.html", "jobs", job=record)


async def schedules_page(request: Request) -> Response:
    rows = await blocking(schedule_rows, web_context(request).app)
    return render_page(request, "schedules.html", "schedules", schedules=rows)


def _filters(request: Request) -> dict[str, str | None]:
    status = params.status_param(request)
    return {
        "queue": params.queue_param(request),
        "status": status.value if status else None,
        "job_type": params.job_type_param(request),
    }


def _pager(request: Request, page: int, *, has_next: bool) -> dict[str, str | int | None]:
    def link(number: int) -> str:
        query = [(k, v) for k, v in request.query_params.multi_items() if k != "page" and v]
        return "?" + urlencode([*query, ("page", str(number))])

    return {
        "page": page,
        "previous": link(page - 1) if page > 1 else None,
        "next": link(page + 1) if has_next else None,
    }


def dashboard_routes() -> list[Route]:
    return [
        RawPathRoute("/", overview, methods=["GET"]),
        RawPathRoute("/jobs", jobs_page, methods=["GET"]),
        RawPathRoute("/jobs/{jid}", job_page, methods=["GET"]),
        RawPathRoute("/dead", dead_page, methods=["GET"]),
        RawPathRoute("/schedules", schedules_page, methods=["GET"]),
    ]
