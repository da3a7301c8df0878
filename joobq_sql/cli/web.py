"""`joobq-sql web`: serve the REST API, the dashboard and /metrics (uvicorn)."""

from __future__ import annotations

import os

import click

from ..app import JoobQ
from ..errors import ConfigurationError
from ._apps import import_app
from ._context import CliContext, check_migrated, pass_cli
from ._errors import CliError


@click.command(name="web", short_help="Serve the REST API, the dashboard and /metrics.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", type=click.IntRange(0, 65535), default=8080, show_default=True, help="TCP port."
)
@click.option(
    "--app",
    "app_reference",
    metavar="MODULE:ATTR",
    help="Your JoobQ application (its job types, queues and schedules), e.g. myproject.jobs:app. "
    "Default: the database of the global options.",
)
@click.option(
    "--allowed-hosts",
    metavar="NAMES",
    help="Host names to answer to besides localhost, 127.0.0.1 and [::1], comma-separated "
    "('*': any), e.g. for a dashboard behind a proxy. Without a token, any other Host header "
    "is refused (DNS rebinding); with one, any is served unless this is given. "
    "Default: $JOOBQ_ALLOWED_HOSTS.",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
)
@pass_cli
def command(
    cli: CliContext,
    host: str,
    port: int,
    app_reference: str | None,
    allowed_hosts: str | None,
    log_level: str,
) -> None:
    """Serve the web app until interrupted.

    With $JOOBQ_API_TOKEN set, every request needs it (Authorization: Bearer <token>; the
    dashboard takes it once as ?token=...). Without a token the server only listens on a
    loopback address, and answers only to this machine's Host names and --allowed-hosts.
    """
    try:
        from ..web.auth import check_bind, resolve_token
        from ..web.hosts import resolve_allowed_hosts
        from ..web.server import serve
    except ImportError as exc:
        hint = "pip install 'joobq-sql[web]'"
        raise CliError(f"the web app needs its extra: {hint} ({exc})") from None
    try:
        token = resolve_token(None)
        check_bind(host, token)
    except ConfigurationError as exc:
        raise click.BadParameter(str(exc), param_hint="'--host'") from None
    try:
        hosts = resolve_allowed_hosts(allowed_hosts)
    except ConfigurationError as exc:
        raise click.BadParameter(str(exc), param_hint="'--allowed-hosts'") from None
    app = _application(cli, app_reference)
    click.echo(f"joobq-sql web: serving on http://{_shown(host)}:{port}/", err=True)
    try:
        serve(app, host=host, port=port, token=token, allowed_hosts=hosts, log_level=log_level)
    finally:
        app.close()


def _application(cli: CliContext, reference: str | None) -> JoobQ:
    """The application to serve: --app's, else one on the global options' database. Either way
    the database must be reachable and migrated (a one-line error says what to do)."""
    if reference is None:
        return JoobQ(store=cli.store(), schema=cli.schema)
    if cli.database_url:
        os.environ["JOOBQ_DATABASE_URL"] = cli.database_url
    app = import_app(reference)
    store = app.store
    if store.sql_engine is not None and store.schema is not None:
        check_migrated(store.sql_engine, store.schema)
    return app


def _shown(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
