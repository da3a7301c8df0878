"""Jobs: listing (all, retrying, dead), one job, and retry, cancel and delete of one job."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ...status import JobStatus
from .. import params
from ..context import blocking, web_context
from ..errors import ApiError
from ..jobs_json import job_json, page_json


async def list_jobs(request: Request) -> Response:
    """GET /joobq/jobs?queue=&status=&job_type=&limit=&offset=: newest first."""
    queue = params.queue_param(request)
    status = params.status_param(request)
    job_type = params.job_type_param(request)
    limit, offset = params.page_params(request)
    records = await blocking(
        web_context(request).store.search_jobs,
        queue=queue,
        status=status,
        job_type=job_type,
        offset=offset,
        limit=limit,
    )
    body = page_json(
        records,
        limit=limit,
        offset=offset,
        queue=queue,
        status=status.value if status else None,
        job_type=job_type,
    )
    return JSONResponse(body)


async def retrying_jobs(request: Request) -> Response:
    """GET /joobq/jobs/retrying?queue=&limit=&offset=: failed jobs waiting for their backoff."""
    return await _in_status(request, JobStatus.RETRYING)


async def dead_jobs(request: Request) -> Response:
    """GET /joobq/jobs/dead?queue=&limit=&offset=: the dead letter."""
    return await _in_status(request, JobStatus.DEAD)


async def _in_status(request: Request, status: JobStatus) -> Response:
    queue = params.queue_param(request)
    limit, offset = params.page_params(request)
    records = await blocking(
        web_context(request).store.search_jobs,
        queue=queue,
        status=status,
        offset=offset,
        limit=limit,
    )
    return JSONResponse(page_json(records, limit=limit, offset=offset, queue=queue))


async def get_job(request: Request) -> Response:
    """GET /joobq/jobs/{jid}: the job in any state, with its whole error history."""
    jid = params.jid_path(request)
    record = await blocking(web_context(request).store.get_job, jid)
    if record is None:
        raise _not_found(jid)
    return JSONResponse(job_json(record))


async def retry_job(request: Request) -> Response:
    """POST /joobq/jobs/{jid}/retry: a dead job is re-driven into its queue with a fresh retry
    budget (its errors kept); a scheduled or retrying one runs now. 409 for other states."""
    context = web_context(request)
    jid = params.jid_path(request)
    changed = await blocking(context.app.retry, jid)
    record = await blocking(context.store.get_job, jid)
    if record is None:
        raise _not_found(jid)
    if not changed:
        raise ApiError(
            409,
            f"job {jid} is {record.status.value}; only dead, scheduled and retrying jobs can be "
            "retried",
            field="jid",
        )
    return JSONResponse({"jid": str(jid), "retried": True, "status": record.status.value})


async def cancel_job(request: Request) -> Response:
    """POST /joobq/jobs/{jid}/cancel: a waiting job becomes dead ("cancelled") and never runs;
    a running one is asked to stop ("requested"). 409 for a job that is already over."""
    context = web_context(request)
    jid = params.jid_path(request)
    result = await blocking(context.app.cancel, jid)
    if jid in result:
        return JSONResponse({"jid": str(jid), "result": result[jid]})
    record = await blocking(context.store.get_job, jid)
    if record is None:
        raise _not_found(jid)
    raise ApiError(
        409,
        f"job {jid} is {record.status.value}; only waiting and running jobs can be cancelled",
        field="jid",
    )


async def delete_job(request: Request) -> Response:
    """DELETE /joobq/jobs/{jid}: remove the job in any state (a running one's finish is then
    fenced out)."""
    jid = params.jid_path(request)
    deleted = await blocking(web_context(request).store.delete_jobs, [jid])
    if not deleted:
        raise _not_found(jid)
    return JSONResponse({"jid": str(jid), "deleted": True})


def _not_found(jid: object) -> ApiError:
    return ApiError(404, f"no job with jid {jid}", field="jid")
