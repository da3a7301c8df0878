"""GET /joobq/health/check: asks the database for its clock; 503 when it cannot answer."""

from __future__ import annotations

import asyncio
import time

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..context import blocking, web_context
from ..unavailable import retry_after, unreachable_reason

#: Longest the check waits for the database before it answers 503.
HEALTH_TIMEOUT = 5.0


async def health_check(request: Request) -> Response:
    store = web_context(request).store
    started = time.perf_counter()
    try:
        now = await asyncio.wait_for(blocking(store.now), HEALTH_TIMEOUT)
    except TimeoutError:
        return _unavailable(f"the database did not answer within {HEALTH_TIMEOUT:g} s")
    except Exception as exc:
        return _unavailable(unreachable_reason(exc))
    return JSONResponse(
        {
            "status": "ok",
            "database": "ok",
            "database_time": now.isoformat(),
            "latency_ms": round((time.perf_counter() - started) * 1000, 2),
        }
    )


def _unavailable(reason: str) -> Response:
    return JSONResponse(
        {"status": "unavailable", "database": "unreachable", "error": reason},
        status_code=503,
        headers=retry_after(),
    )
