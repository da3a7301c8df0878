"""`joobq-sql db start|stop|status|url`: the embedded PostgreSQL (what joobq-sql uses when no
database URL is set). It listens on a Unix socket only and keeps running for every process of
this user until `db stop`."""

from __future__ import annotations

import os
from pathlib import Path

import click

from .. import embedded
from ._context import CliContext, json_option, pass_cli, start_embedded
from ._output import emit_json


@click.group(name="db")
def command() -> None:
    """Start, stop and inspect the embedded PostgreSQL."""


def _server_pid(data: Path) -> int | None:
    """The postmaster's pid if one runs on `data` (read from its postmaster.pid)."""
    try:
        pid = int((data / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # it runs, as the server's own system user
    return pid


@command.command()
@json_option
@pass_cli
def start(cli: CliContext) -> None:
    """Start the server, create the joobq database and migrate it."""
    url = start_embedded(schema=cli.schema, migrate=True)
    _describe(cli, url)


@command.command()
@json_option
@pass_cli
def stop(cli: CliContext) -> None:
    """Stop the server (fast shutdown: open sessions are ended)."""
    was_running = embedded.stop()
    if cli.json:
        emit_json({"stopped": was_running, "data_directory": str(embedded.data_directory())})
    else:
        click.echo("stopped the embedded PostgreSQL" if was_running else "it was not running")


@command.command()
@json_option
@pass_cli
def status(cli: CliContext) -> None:
    """Say whether the server runs, where its data lives, and its URL (exit 0 either way)."""
    data = embedded.data_directory()
    pid = _server_pid(data)
    url = _without_password(embedded.server_url()) if pid is not None else None
    if cli.json:
        emit_json({"running": pid is not None, "pid": pid, "data_directory": str(data), "url": url})
        return
    click.echo(f"embedded PostgreSQL: {f'running (pid {pid})' if pid else 'not running'}")
    click.echo(f"data directory: {data}")
    if url:
        click.echo(f"url: {url}")


@command.command()
@pass_cli
def url(cli: CliContext) -> None:
    """Print the URL of the joobq database on the server (starting it if needed)."""
    _describe(cli, start_embedded(schema=cli.schema, migrate=True), url_only=True)


def _without_password(url: str) -> str:
    """The server trusts local connections: a URL needs no password, so none is shown."""
    from sqlalchemy.engine import make_url

    # URL.set() ignores None; the URL is a NamedTuple, so _replace drops the password.
    return make_url(url)._replace(password=None).render_as_string(hide_password=False)


def _describe(cli: CliContext, url: str, *, url_only: bool = False) -> None:
    data = embedded.data_directory()
    url = _without_password(url)
    if cli.json:
        emit_json({"running": True, "data_directory": str(data), "url": url})
    elif url_only:
        click.echo(url)
    else:
        click.echo(f"embedded PostgreSQL running, data in {data}")
        click.echo(f"url: {url}")
