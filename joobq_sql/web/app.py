"""create_app: the ASGI application (Starlette) that serves the REST API, the dashboard and the
metrics of one JoobQ application. Mount it inside your own ASGI application, or serve it with
`joobq-sql web`."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..app import JoobQ
from .api import api_routes
from .auth import AuthMiddleware, resolve_token
from .context import WebContext
from .dashboard import dashboard_routes
from .errors import ApiError, api_error_response, http_error_response
from .metrics.endpoint import metrics
from .metrics.run_metrics import RunMetrics
from .openapi import openapi_json


def create_app(app: JoobQ | None = None, *, token: str | None = None) -> Starlette:
    """The web app for `app` (default: a JoobQ configured from the environment).

    With a `token` (default: $JOOBQ_API_TOKEN) every request needs it (see
    joobq_sql/web/auth.py). The perform-duration and claim-latency histograms of /metrics are
    measured by a middleware this call adds to `app`: they fill in when the app's workers run in
    this process and start after this call.
    """
    if app is None:
        app = JoobQ()
    elif not isinstance(app, JoobQ):
        raise TypeError(f"create_app needs a JoobQ application, got {app!r}")
    token = resolve_token(token)
    context = WebContext(app=app, token=token, run_metrics=RunMetrics.installed_on(app))
    routes = [
        *api_routes(),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/openapi.json", openapi_json, methods=["GET"]),
        Mount("/static", StaticFiles(packages=[("joobq_sql.web", "static")]), name="static"),
        *dashboard_routes(),
    ]
    web = Starlette(
        routes=routes,
        middleware=[Middleware(AuthMiddleware, token=token)],
        exception_handlers={ApiError: api_error_response, HTTPException: http_error_response},
    )
    web.state.joobq = context
    return web
