"""The one error the HTTP layer raises on purpose, and how it becomes a response."""

from __future__ import annotations

import html
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response


class ApiError(Exception):
    """A request the API refuses: its HTTP status, and a message that names the bad value and
    what is valid. `errors` lists every bad field when there are several."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        field: str | None = None,
        errors: list[dict[str, str]] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.errors = errors

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.message}
        if self.field is not None:
            body["field"] = self.field
        if self.errors:
            body["errors"] = self.errors
        return body


def field_error(field: str, message: str) -> ApiError:
    """422: the field `field` has a bad value (the message says which, and what is valid)."""
    return ApiError(422, message, field=field)


async def api_error_response(request: Request, exc: Exception) -> Response:
    """JSON for the API; a small page for the dashboard (the message escaped)."""
    assert isinstance(exc, ApiError)
    if _is_api(request):
        return JSONResponse(exc.body(), status_code=exc.status)
    page = _ERROR_PAGE.format(status=exc.status, message=html.escape(exc.message))
    return HTMLResponse(page, status_code=exc.status)


async def http_error_response(request: Request, exc: Exception) -> Response:
    """404 and 405 as JSON under /joobq (API clients parse them), as text elsewhere."""
    assert isinstance(exc, HTTPException)
    headers = dict(exc.headers or {})
    if _is_api(request):
        body = {"error": _describe(request, exc)}
        return JSONResponse(body, status_code=exc.status_code, headers=headers)
    return PlainTextResponse(_describe(request, exc), status_code=exc.status_code, headers=headers)


def _is_api(request: Request) -> bool:
    return "/joobq/" in request.url.path + "/"


_ERROR_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>joobq: {status}</title></head>
<body style="font-family: system-ui, sans-serif; margin: 3rem">
<h1>{status}</h1><p>{message}</p><p><a href="javascript:history.back()">Back</a></p>
</body></html>
"""


def _describe(request: Request, exc: HTTPException) -> str:
    if exc.status_code == 405:
        allowed = (exc.headers or {}).get("Allow", "")
        return f"{request.method} is not allowed on {request.url.path}; allowed: {allowed}"
    if exc.status_code == 404:
        # As sent: the decoded path would show a%2Fb as a/b, a path the client did not ask for.
        raw = request.scope.get("raw_path")
        return f"nothing at {raw.decode('latin-1') if isinstance(raw, bytes) else request.url.path}"
    return str(exc.detail)
