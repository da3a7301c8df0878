"""Reading query and path parameters: each bad value is a 422 that names it and what is valid."""

from __future__ import annotations

from uuid import UUID

from starlette.requests import Request

from .. import _validation as check
from ..errors import ConfigurationError
from ..settings import parse_duration
from ..status import JobStatus
from .errors import field_error

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
MAX_OFFSET = 1_000_000
#: The longest window the error endpoints look back over.
MAX_WINDOW_SECONDS = 30 * 86400.0


def int_param(request: Request, name: str, *, default: int, low: int, high: int) -> int:
    """The integer query parameter `name` in low..high, or `default` when absent."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise field_error(
            name, f"{name} must be an integer in {low}..{high}, got {raw!r}"
        ) from None
    if not low <= value <= high:
        raise field_error(name, f"{name} must be in {low}..{high}, got {value}")
    return value


def page_params(request: Request) -> tuple[int, int]:
    """(limit, offset): limit 1..500 (default 50), offset 0..1,000,000 (default 0)."""
    limit = int_param(request, "limit", default=DEFAULT_PAGE_SIZE, low=1, high=MAX_PAGE_SIZE)
    offset = int_param(request, "offset", default=0, low=0, high=MAX_OFFSET)
    return limit, offset


def queue_param(request: Request, name: str = "queue") -> str | None:
    """An optional queue filter, checked like the store checks queue names."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    return _queue(raw, name)


def queue_path(request: Request, *, existing: bool = True) -> str:
    """The queue a path names. `existing=False` where the request writes the name (a pause):
    only names valid today; elsewhere also a name rows written before the visible-name rule
    hold, so that they stay reachable."""
    return _queue(request.path_params["queue"], "queue", existing=existing)


def _queue(value: str, name: str, *, existing: bool = True) -> str:
    try:
        return check.queue_name(value, what=name, existing=existing)
    except (TypeError, ValueError) as exc:
        raise field_error(name, str(exc)) from None


def status_param(request: Request) -> JobStatus | None:
    raw = request.query_params.get("status")
    if raw is None or raw == "":
        return None
    try:
        return JobStatus(raw)
    except ValueError:
        valid = ", ".join(s.value for s in JobStatus)
        raise field_error("status", f"status must be one of {valid}; got {raw!r}") from None


def job_type_param(request: Request) -> str | None:
    raw = request.query_params.get("job_type") or request.query_params.get("type")
    if raw is None or raw == "":
        return None
    try:
        return check.job_type(raw, existing=True)
    except ValueError as exc:
        raise field_error("job_type", str(exc)) from None


def jid_path(request: Request) -> UUID:
    raw = request.path_params["jid"]
    try:
        return UUID(raw)
    except ValueError:
        raise field_error("jid", f"jid must be a UUID such as {UUID(int=0)}, got {raw!r}") from None


def window_param(request: Request, default: float) -> float:
    """The look-back window in seconds: a number, or a duration such as '5m' or '1h'."""
    raw = request.query_params.get("window")
    if raw is None or raw == "":
        return default
    try:
        seconds = parse_duration(raw, setting="window")
    except ConfigurationError as exc:
        raise field_error("window", str(exc)) from None
    if not 1 <= seconds <= MAX_WINDOW_SECONDS:
        raise field_error(
            "window",
            f"window must be between 1 s and {MAX_WINDOW_SECONDS:g} s (30 days), got {raw!r}",
        )
    return seconds
