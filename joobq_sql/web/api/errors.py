"""GET /joobq/errors/stats|recent|by-type|by-queue?window=: errors from the database.

`window` is seconds or a duration ("15m", "1h"; default: the application's error_window).
See joobq_sql/web/error_stats.py for what is counted.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .. import params
from ..context import blocking, web_context
from ..error_stats import ErrorScan, scan_errors


async def _scan(request: Request) -> ErrorScan:
    context = web_context(request)
    window = params.window_param(request, context.app.settings.error_window)
    return await blocking(scan_errors, context.store, window)


async def error_stats(request: Request) -> Response:
    context = web_context(request)
    scan = await _scan(request)
    threshold = context.app.settings.error_alert_threshold
    return JSONResponse(
        {
            **scan.summary(),
            "by_type": scan.by_type(),
            "by_queue": scan.by_queue(),
            "by_job_type": scan.by_job_type(),
            "alert_threshold": threshold,
            "alerting": len(scan.entries) >= threshold,
        }
    )


async def recent_errors(request: Request) -> Response:
    """The newest errors first, at most `limit` (1..500, default 50)."""
    limit = params.int_param(request, "limit", default=50, low=1, high=params.MAX_PAGE_SIZE)
    scan = await _scan(request)
    return JSONResponse(
        {**scan.summary(), "errors": [entry.to_json() for entry in scan.entries[:limit]]}
    )


async def errors_by_type(request: Request) -> Response:
    scan = await _scan(request)
    return JSONResponse({**scan.summary(), "by_type": scan.by_type()})


async def errors_by_queue(request: Request) -> Response:
    scan = await _scan(request)
    return JSONResponse({**scan.summary(), "by_queue": scan.by_queue()})
