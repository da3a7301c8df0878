"""Who may use the web app: the bearer token, the dashboard's cookie, and cross-origin writes.

- With a token (the `token` argument, else $JOOBQ_API_TOKEN), every request needs it, except
  the OpenAPI document and the dashboard's static files: API clients send
  ``Authorization: Bearer <token>``; a browser opens the dashboard once with ``?token=<token>``,
  which sets an HttpOnly, SameSite=Strict cookie and redirects to the same page without it.
  The cookie holds an HMAC of the token, not the token.
- Whatever the token, a POST or DELETE that a browser marks as coming from another site
  (Origin or Sec-Fetch-Site) is refused with 403, so a web page cannot make a visitor's browser
  retry, cancel or purge jobs on a dashboard it can reach.
- Without a token, a request whose Host is not this machine's (or an allowed name) is refused
  with 403 before these rules run, so a page cannot reach the dashboard by DNS rebinding
  either (joobq_sql/web/hosts.py).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
from urllib.parse import urlencode, urlsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from ..errors import ConfigurationError
from .paths import route_path

TOKEN_ENV = "JOOBQ_API_TOKEN"
COOKIE = "joobq_session"
PUBLIC_PATHS = ("/openapi.json",)
PUBLIC_PREFIXES = ("/static/",)
API_PREFIXES = ("/joobq/", "/metrics")
MUTATING_METHODS = frozenset({"POST", "DELETE", "PUT", "PATCH"})


def resolve_token(token: str | None) -> str | None:
    """The token to require: `token`, else $JOOBQ_API_TOKEN; None when neither is set."""
    if token is None:
        token = os.environ.get(TOKEN_ENV, "").strip() or None
    elif not isinstance(token, str) or not token.strip():
        raise ConfigurationError(f"token must be a non-empty string, got {token!r}")
    return token


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses (127.0.0.0/8, ::1); False for any other name,
    including 0.0.0.0 and ::, which listen on every interface."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> None:
    """Refuse to listen beyond this machine without a token."""
    if token is None and not is_loopback(host):
        raise ConfigurationError(
            f"refusing to listen on {host!r} without a token: anyone who can reach it could "
            f"retry, cancel and delete jobs. Set {TOKEN_ENV}, or listen on 127.0.0.1"
        )


def session_value(token: str) -> str:
    return hmac.new(token.encode(), b"joobq dashboard session", hashlib.sha256).hexdigest()


class AuthMiddleware:
    """The ASGI middleware that applies the rules in the module docstring."""

    def __init__(self, app: ASGIApp, *, token: str | None) -> None:
        self.app = app
        self.token = token
        self.session = session_value(token) if token else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        response = self._check(request, route_path(scope))
        if response is None:
            await self.app(scope, receive, send)
        else:
            await response(scope, receive, send)

    def _check(self, request: Request, path: str) -> Response | None:
        if path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES):
            return None
        is_api = path.startswith(API_PREFIXES)
        if request.method in MUTATING_METHODS and _cross_site(request):
            message = "cross-site request refused: send it from the dashboard's own page"
            return JSONResponse({"error": message}, status_code=403)
        if self.token is None:
            return None
        if self._authorized(request):
            return None
        if not is_api and "token" in request.query_params and request.method == "GET":
            return self._login(request)
        if is_api:
            return JSONResponse(
                {"error": "missing or wrong bearer token: send 'Authorization: Bearer <token>'"},
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer realm="joobq"'},
            )
        return HTMLResponse(_LOGIN_PAGE, status_code=401)

    def _authorized(self, request: Request) -> bool:
        assert self.token is not None and self.session is not None
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(
            credentials.strip().encode(), self.token.encode()
        ):
            return True
        cookie = request.cookies.get(COOKIE, "")
        return bool(cookie) and hmac.compare_digest(cookie.encode(), self.session.encode())

    def _login(self, request: Request) -> Response:
        """?token=...: set the session cookie and drop the token from the address."""
        assert self.token is not None and self.session is not None
        given = request.query_params.get("token", "")
        if not hmac.compare_digest(given.encode(), self.token.encode()):
            return HTMLResponse(_LOGIN_PAGE, status_code=401)
        rest = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
        query = urlencode(rest)
        target = request.url.path + (f"?{query}" if query else "")
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(
            COOKIE,
            self.session,
            path=request.scope.get("root_path") or "/",
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return response


def _cross_site(request: Request) -> bool:
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None and fetch_site not in ("same-origin", "none"):
        return True
    origin = request.headers.get("origin")
    if origin is None:
        return False  # not a browser's cross-origin request (curl, scripts, same-origin GETs)
    parts = urlsplit(origin)
    return parts.netloc != request.headers.get("host", "") or parts.scheme not in ("http", "https")


_LOGIN_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>joobq: token needed</title></head>
<body style="font-family: system-ui, sans-serif; margin: 3rem">
<h1>This dashboard needs its token</h1>
<p>Open it once with <code>?token=&lt;JOOBQ_API_TOKEN&gt;</code> added to the address; the
browser then keeps a session cookie and the token leaves the address bar.</p>
</body></html>
"""
