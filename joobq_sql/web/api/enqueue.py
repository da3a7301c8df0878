"""POST /joobq/jobs: enqueue one job, with JoobQ's validation rules and status codes.

- 400: the body is not JSON (wrong Content-Type, malformed, NaN or Infinity) or not an object;
- 422: a field is bad; every bad field is listed, each message naming the value and what is
  valid. Nothing is written.
- 201: the job is stored (200 when a unique job with the same key already waits or runs, whose
  jid is returned; 409 when its class says on_duplicate = "raise").

When a Job class registers `job_type` in this process, `data` must fit its fields (the same
check a worker makes before it runs the job); the class also gives the defaults of queue,
priority and retries. Other job types are stored as given, for workers that know them.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ... import _validation as check
from ..._uuid7 import uuid7
from ...app import JoobQ
from ...errors import DuplicateJobError, JobDecodeError
from ...job import Job, registered_job_types
from ...store.records import NewJob
from ..context import blocking, web_context
from ..errors import ApiError

QUEUE_PATTERN = re.compile(r"[A-Za-z0-9_-]+")
MAX_QUEUE_LENGTH = 50
PRIORITY_RANGE = (0, 100)
DELAY_RANGE = (0, 86400)
RETRIES_RANGE = (0, 10)
MAX_BODY_BYTES = 1024 * 1024
FIELDS = ("job_type", "queue", "data", "args", "priority", "delay", "retries")

__all__ = ["EnqueueRequest", "enqueue"]


@dataclass(frozen=True)
class EnqueueRequest:
    """A validated enqueue body. `data` (JoobQ's name; `args` is accepted too) holds the job's
    fields."""

    job_type: str
    data: dict[str, Any]
    queue: str | None = None
    priority: int | None = None
    delay: float = 0.0
    retries: int | None = None

    @classmethod
    def parse(cls, body: dict[str, Any]) -> EnqueueRequest:
        """Check every field; raise one 422 ApiError listing each bad one."""
        problems: list[dict[str, str]] = []

        def bad(field: str, message: str) -> None:
            problems.append({"field": field, "message": message})

        unknown = sorted(set(body) - set(FIELDS))
        if unknown:
            bad(unknown[0], f"unknown fields {unknown}; valid fields are {list(FIELDS)}")
        job_type = body.get("job_type")
        if job_type is None:
            bad("job_type", "job_type is required: the name of a registered job type")
        else:
            try:
                check.job_type(job_type)
            except ValueError as exc:
                bad("job_type", str(exc))
        if "data" in body and "args" in body:
            bad("args", "give the job's fields as `data` or as `args`, not both")
        data = body.get("data", body.get("args", {}))
        if not isinstance(data, dict):
            bad("data", f"data must be a JSON object of the job's fields, got {_kind(data)}")
        queue = body.get("queue")
        if queue is not None and not (
            isinstance(queue, str)
            and len(queue) <= MAX_QUEUE_LENGTH
            and QUEUE_PATTERN.fullmatch(queue)
        ):
            bad(
                "queue",
                f"queue must be 1..{MAX_QUEUE_LENGTH} characters of letters, digits, '_' and "
                f"'-' (^[a-zA-Z0-9_-]+$), got {_shown(queue)}",
            )
        priority = _int_in(body, "priority", PRIORITY_RANGE, bad)
        retries = _int_in(body, "retries", RETRIES_RANGE, bad)
        delay = body.get("delay", 0)
        low, high = DELAY_RANGE
        if not _is_number(delay) or not low <= delay <= high:
            bad("delay", f"delay must be a number of seconds in {low}..{high}, got {_shown(delay)}")
        if problems:
            first = problems[0]
            raise ApiError(422, first["message"], field=first["field"], errors=problems)
        assert isinstance(job_type, str)
        return cls(
            job_type=job_type,
            data=data,
            queue=queue,
            priority=priority,
            delay=float(delay),
            retries=retries,
        )

    def new_job(self, app: JoobQ) -> tuple[NewJob, bool]:
        """The row to insert, and whether `data` was checked against a registered class.
        Data PostgreSQL cannot store (a NUL, a lone surrogate) is a 422 naming the field."""
        try:
            return self._new_job(app)
        except (TypeError, ValueError) as exc:
            raise ApiError(422, f"data cannot be stored: {exc}", field="data") from None

    def _new_job(self, app: JoobQ) -> tuple[NewJob, bool]:
        klass = registered_job_types().get(self.job_type)
        if klass is None:
            settings = app.settings
            return NewJob(
                jid=uuid7(),
                queue=self.queue or settings.default_queue,
                job_type=self.job_type,
                args=self.data,
                priority=0 if self.priority is None else self.priority,
                max_retries=settings.retries if self.retries is None else self.retries,
                delay=self.delay,
                expires_in=settings.expires,
            ), False
        job = _decode(klass, self.data)
        row = app.new_job(job, queue=self.queue, priority=self.priority, delay=self.delay)
        if self.retries is not None:
            row = dataclasses.replace(row, max_retries=self.retries)
        return row, True


def _decode(klass: type[Job], data: dict[str, Any]) -> Job:
    try:
        job = klass.from_args(data)
        job.to_args()  # values that decode but cannot be stored (a NaN float) fail here
    except (JobDecodeError, TypeError, ValueError) as exc:
        raise ApiError(422, f"data does not fit {klass.job_type}: {exc}", field="data") from None
    return job


def _int_in(body: dict[str, Any], name: str, bounds: tuple[int, int], bad: Any) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    low, high = bounds
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        bad(name, f"{name} must be an integer in {low}..{high}, got {_shown(value)}")
        return None
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _kind(value: Any) -> str:
    return {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), f"a {type(value).__name__}"
    )


def _shown(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


async def read_json_object(request: Request) -> dict[str, Any]:
    """The request's JSON object body; 400 for a wrong content type, bad JSON or a non-object."""
    content_type = request.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() != "application/json":
        raise ApiError(
            400, f"Content-Type must be application/json, got {content_type or 'none'!r}"
        )
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():  # stop reading at the limit, not after the whole body
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise ApiError(413, f"the body is over {MAX_BODY_BYTES} bytes, the most allowed")
        chunks.append(chunk)
    body = b"".join(chunks)
    try:
        payload = json.loads(body, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"the body is not valid JSON: {exc}") from None
    except RecursionError:
        raise ApiError(400, "the body is nested too deeply (over ~1,000 levels)") from None
    if not isinstance(payload, dict):
        raise ApiError(400, f"the body must be a JSON object, got {_kind(payload)}")
    return payload


async def enqueue(request: Request) -> Response:
    """Enqueue one job (see the module docstring for the rules and status codes)."""
    context = web_context(request)
    parsed = EnqueueRequest.parse(await read_json_object(request))
    row, validated = parsed.new_job(context.app)
    try:
        (jid,) = await blocking(context.store.enqueue_jobs, [row])
    except DuplicateJobError as exc:
        raise ApiError(409, str(exc), field="job_type") from None
    duplicate = jid != row.jid
    body = {
        "jid": str(jid),
        "job_type": row.job_type,
        "queue": row.queue,
        "status": "duplicate" if duplicate else row.status.value,
        "priority": row.priority,
        "delay": row.delay,
        "retries": row.max_retries,
        "validated": validated,
    }
    location = f"{request.scope.get('root_path', '')}/joobq/jobs/{jid}"
    return JSONResponse(body, status_code=200 if duplicate else 201, headers={"Location": location})
