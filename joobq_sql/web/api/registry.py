"""GET /joobq/jobs/registry: every Job class this process knows, with its args' JSON schema."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ...app import JoobQ
from ...job import Job, registered_job_types
from ..context import web_context
from ..json_schema import job_schema


def registry_entry(app: JoobQ, klass: type[Job]) -> dict[str, Any]:
    timeout = klass.timeout.total_seconds() if klass.timeout else None
    return {
        "job_type": klass.job_type,
        "class": f"{klass.__module__}.{klass.__qualname__}",
        "queue": app.queue_for(klass),
        "priority": klass.priority,
        "retries": klass.retries,
        "expires": klass.expires.total_seconds() if klass.expires else None,
        "timeout": timeout,
        "schema": job_schema(klass),
    }


async def job_registry(request: Request) -> Response:
    app = web_context(request).app
    types = registered_job_types()
    entries = [registry_entry(app, types[name]) for name in sorted(types)]
    return JSONResponse({"job_types": entries})
