"""GET /joobq/schedules: each schedule, its latest tick (from the database) and its next run.

Schedules are declared in code, so only the application given to the web app knows their
pattern and next run; a schedule that only the database knows (its ticks were written by
workers of another application) is listed with its last tick alone.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ...app import JoobQ
from ...scheduler.schedules import Schedule
from ..context import blocking, web_context


def schedule_rows(app: JoobQ) -> list[dict[str, Any]]:
    store = app.store
    now = store.now()
    last_ticks = store.last_ticks()
    rows = []
    for name in sorted(app.schedules.keys() | last_ticks.keys()):
        schedule = app.schedules.get(name)
        last = last_ticks.get(name)
        next_run = _next_run(schedule, now) if schedule is not None else None
        rows.append(
            {
                "name": name,
                "defined": schedule is not None,
                "job_type": schedule.job_class.job_type if schedule else None,
                "description": schedule.describe() if schedule else None,
                "misfire": schedule.misfire if schedule else None,
                "fields": schedule.job_class(**schedule.fields).to_args() if schedule else None,
                "last_tick": last.isoformat() if last else None,
                "next_run": next_run.isoformat() if next_run else None,
            }
        )
    return rows


def _next_run(schedule: Schedule, now: datetime) -> datetime | None:
    horizon = timedelta(days=400)
    if schedule.interval is not None:
        horizon = max(horizon, timedelta(seconds=2 * schedule.interval))
    ticks = schedule.ticks(now, now + horizon, 1)
    return ticks[0] if ticks else None


async def list_schedules(request: Request) -> Response:
    rows = await blocking(schedule_rows, web_context(request).app)
    return JSONResponse({"schedules": rows})
