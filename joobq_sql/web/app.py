"""create_app: the ASGI application (Starlette) that serves the REST API, the dashboard and the
metrics of one JoobQ application. Mount it inside your own ASGI application, or serve it with
`joobq-sql web`."""

from __future__ import annotations

from collections.abc import Iterable

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from ..app import JoobQ
from .api import api_routes
from .auth import AuthMiddleware, resolve_token
from .context import WebContext
from .dashboard import dashboard_routes
from .errors import ApiError, api_error_response, http_error_response
from .hosts import HostMiddleware, resolve_allowed_hosts
from .metrics.endpoint import metrics
from .metrics.run_metrics import RunMetrics
from .openapi import openapi_json
from .paths import RawPathRoute, Utf8Middleware
from .unavailable import DATABASE_UNAVAILABLE, database_unavailable_response


def create_app(
    app: JoobQ | None = None,
    *,
    token: str | None = None,
    allowed_hosts: Iterable[str] | str | None = None,
) -> Starlette:
    """The web app for `app` (default: a JoobQ configured from the environment).

    With a `token` (default: $JOOBQ_API_TOKEN) every request needs it (see
    joobq_sql/web/auth.py). Without one, only requests whose Host is this machine's
    (localhost, 127.0.0.0/8, ::1) or one of `allowed_hosts` (default: $JOOBQ_ALLOWED_HOSTS,
    comma-separated; '*': any) are answered, against DNS rebinding; with one, `allowed_hosts`
    limits the Host names when given (see joobq_sql/web/hosts.py). The perform-duration and
    claim-latency histograms of /metrics are measured by a middleware this call adds to `app`:
    they fill in when the app's workers run in this process and start after this call.
    """
    if app is None:
        app = JoobQ()
    elif not isinstance(app, JoobQ):
        raise TypeError(f"create_app needs a JoobQ application, got {app!r}")
    token = resolve_token(token)
    hosts = resolve_allowed_hosts(allowed_hosts)
    if hosts is None and token is None:
        hosts = frozenset()  # this machine's names only
    context = WebContext(app=app, token=token, run_metrics=RunMetrics.installed_on(app))
    routes = [
        *api_routes(),
        RawPathRoute("/metrics", metrics, methods=["GET"]),
        RawPathRoute("/openapi.json", openapi_json, methods=["GET"]),
        Mount("/static", StaticFiles(packages=[("joobq_sql.web", "static")]), name="static"),
        *dashboard_routes(),
    ]
    web = Starlette(
        routes=routes,
        middleware=[
            Middleware(HostMiddleware, allowed=hosts),
            Middleware(Utf8Middleware),
            Middleware(AuthMiddleware, token=token),
        ],
        exception_handlers={
            ApiError: api_error_response,
            HTTPException: http_error_response,
            **dict.fromkeys(DATABASE_UNAVAILABLE, database_unavailable_response),
        },
    )
    # A redirect from /x/ to /x is built from the decoded path, so it would turn a%2Fb back
    # into a/b (and x%2F..%2Fv into a path the client resolves to /v): routes match exactly.
    web.router.redirect_slashes = False
    web.state.joobq = context
    return web
