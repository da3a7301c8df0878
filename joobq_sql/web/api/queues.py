"""Queues: their counts, pause and resume, re-driving and purging their dead letter."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ...app import JoobQ
from ...store.base import Store
from .. import params
from ..context import blocking, web_context
from ..jobs_json import queue_json

#: Dead jobs re-driven or purged per statement; a request loops until the queue has none left,
#: up to MAX_BULK jobs (a larger dead letter needs another request).
BULK_BATCH = 1000
MAX_BULK = 100_000


def queue_overview(app: JoobQ) -> list[dict[str, Any]]:
    """Every queue that holds jobs, has counters, is paused or is defined by the application."""
    store = app.store
    stats = store.queue_stats()
    paused = store.paused_queues()
    names = sorted(stats.keys() | paused | app.queues.keys())
    return [
        queue_json(
            name,
            stats.get(name),
            paused=name in paused,
            workers=app.queues[name].workers if name in app.queues else None,
        )
        for name in names
    ]


async def list_queues(request: Request) -> Response:
    """GET /joobq/queues: per queue, what it holds now, its totals, and whether it is paused."""
    queues = await blocking(queue_overview, web_context(request).app)
    return JSONResponse({"queues": queues})


async def pause_queue(request: Request) -> Response:
    """POST /joobq/queues/{queue}/pause: workers everywhere stop starting its jobs."""
    queue = params.queue_path(request, existing=False)
    changed = await blocking(web_context(request).app.pause, queue)
    return JSONResponse({"queue": queue, "paused": True, "changed": changed})


async def resume_queue(request: Request) -> Response:
    """POST /joobq/queues/{queue}/resume."""
    queue = params.queue_path(request)
    changed = await blocking(web_context(request).app.resume, queue)
    return JSONResponse({"queue": queue, "paused": False, "changed": changed})


async def reprocess_queue(request: Request) -> Response:
    """POST /joobq/queues/{queue}/reprocess: re-drive every dead job of the queue, oldest death
    first, each with a fresh retry budget."""
    queue = params.queue_path(request)
    jids = await blocking(_redrive_all, web_context(request).store, queue)
    return JSONResponse({"queue": queue, "reprocessed": len(jids), "jids": [str(j) for j in jids]})


async def purge_dead(request: Request) -> Response:
    """DELETE /joobq/queues/{queue}/dead: delete every dead job of the queue now."""
    queue = params.queue_path(request)
    deleted = await blocking(_purge_all, web_context(request).store, queue)
    return JSONResponse({"queue": queue, "deleted": deleted})


def _redrive_all(store: Store, queue: str) -> list[UUID]:
    jids: list[UUID] = []
    while len(jids) < MAX_BULK:
        batch = store.retry_dead(queue=queue, limit=BULK_BATCH)
        jids.extend(batch)
        if len(batch) < BULK_BATCH:
            break
    return jids


def _purge_all(store: Store, queue: str) -> int:
    deleted = 0
    while deleted < MAX_BULK:
        count = store.delete_dead(queue=queue, limit=BULK_BATCH)
        deleted += count
        if count < BULK_BATCH:
            break
    return deleted
