"""The database is away: every endpoint answers 503 with a one-line reason, not a 500.

A stopped server, a broken network or an exhausted pool is the operator's to fix and the
client's to retry (Retry-After), not a bug: the answer says why in one line (its password
masked), the log gets one warning line per request instead of a traceback, and a dashboard page
says the database is unreachable and keeps refreshing until it is back.
"""

from __future__ import annotations

import logging
from typing import Final

import psycopg
import sqlalchemy.exc
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..settings import mask_password
from .paths import route_path

#: Errors that say the database cannot be reached or cannot serve now (SQLAlchemy wraps
#: psycopg's; the store may raise either).
DATABASE_UNAVAILABLE: Final = (
    psycopg.OperationalError,  # refused or lost connections, server shutting down
    psycopg.InterfaceError,
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.DisconnectionError,
    sqlalchemy.exc.TimeoutError,  # no pooled connection in time
)

RETRY_AFTER_SECONDS = 5

logger = logging.getLogger("joobq_sql.web")


def unreachable_reason(exc: BaseException) -> str:
    """One line: 'the database is unreachable: <error type>: <first line of its message>'."""
    original = getattr(exc, "orig", None)
    # SQLAlchemy's message starts with the wrapped error's class in parentheses; psycopg's
    # own first line is the reason (the rest is libpq's hint).
    shown = original if isinstance(original, psycopg.Error) else exc
    first_line = (str(shown).strip().splitlines() or [""])[0]
    return mask_password(f"the database is unreachable: {_public_name(exc)}: {first_line}")


def _public_name(exc: BaseException) -> str:
    """The name of the driver's or SQLAlchemy's class that `exc` is: the store raises
    subclasses of its own (ConnectFailedError), which mean nothing to an operator."""
    for cls in type(exc).__mro__:
        if cls.__module__.split(".")[0] in ("psycopg", "sqlalchemy"):
            return cls.__name__
    return type(exc).__name__


def retry_after() -> dict[str, str]:
    return {"Retry-After": str(RETRY_AFTER_SECONDS)}


async def database_unavailable_response(request: Request, exc: Exception) -> Response:
    """503: JSON for the API; for the dashboard a page that says the database is unreachable
    (its content refreshes itself, so it turns back into the page once the database is)."""
    reason = unreachable_reason(exc)
    logger.warning("%s %s: %s", request.method, request.url.path, reason)
    if "/joobq/" in request.url.path + "/":
        return JSONResponse({"error": reason}, status_code=503, headers=retry_after())
    from .dashboard import render_page  # imported here: the dashboard imports the API modules

    tab = route_path(request.scope).split("/")[1] or "overview"  # keeps the page's tab lit
    return render_page(
        request, "unavailable.html", tab, status_code=503, headers=retry_after(), reason=reason
    )
