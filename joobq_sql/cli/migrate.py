"""`joobq-sql migrate`: upgrade (the default), downgrade, current, history, and offline SQL.

These commands never auto-migrate anything: on the embedded server they only start it.
`downgrade` goes one revision back by default (`-1`); going to `base` drops joobq's tables
and every job in them, so it asks for --yes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import click

from ._context import CliContext, json_option, pass_cli
from ._errors import CliError
from ._output import emit_json, print_table


@click.group(name="migrate", invoke_without_command=True, short_help="Migrate joobq's tables.")
@json_option
@click.pass_context
def command(ctx: click.Context) -> None:
    """Migrate joobq's tables (default: upgrade to the newest revision)."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(upgrade)


@command.command()
@click.argument("revision", default="head")
@json_option
@pass_cli
def upgrade(cli: CliContext, revision: str = "head") -> None:
    """Upgrade to REVISION (default: head, the newest)."""
    from .. import migrate as migrations

    url = cli.url(migrate=False)
    before = migrations.current(url, schema=cli.schema)
    with _revision_errors():
        migrations.upgrade(url, schema=cli.schema, revision=revision)
    _report(cli, before, migrations.current(url, schema=cli.schema))


@command.command()
@click.argument("revision", default="-1")
@click.option("--yes", is_flag=True, help="Confirm a downgrade to base (drops every job).")
@json_option
@pass_cli
def downgrade(cli: CliContext, revision: str, yes: bool) -> None:
    """Downgrade to REVISION (default: -1, one revision back; `base` drops all tables)."""
    from .. import migrate as migrations

    if revision == "base" and not yes:
        raise click.UsageError(
            "downgrading to base drops joobq's tables and every job in them; add --yes"
        )
    url = cli.url(migrate=False)
    before = migrations.current(url, schema=cli.schema)
    if before is None:
        raise CliError("nothing to downgrade: the database is not migrated")
    with _revision_errors():
        migrations.downgrade(url, schema=cli.schema, revision=revision)
    _report(cli, before, migrations.current(url, schema=cli.schema))


def _report(cli: CliContext, before: str | None, after: str | None) -> None:
    if cli.json:
        emit_json({"schema": cli.schema, "from": before, "to": after})
    elif before == after:
        click.echo(f"schema {cli.schema} is already at revision {after or 'base'}")
    else:
        click.echo(f"migrated schema {cli.schema} from {before or 'base'} to {after or 'base'}")


@command.command()
@json_option
@pass_cli
def current(cli: CliContext) -> None:
    """Show the database's revision and the newest one this joobq-sql ships."""
    from .. import migrate as migrations

    at = migrations.current(cli.url(migrate=False), schema=cli.schema)
    head = migrations.head()
    if cli.json:
        emit_json({"schema": cli.schema, "current": at, "head": head, "up_to_date": at == head})
        return
    state = "up to date" if at == head else "run: joobq-sql migrate"
    click.echo(f"schema {cli.schema}: {at or 'not migrated'} (head {head}; {state})")


@command.command()
@json_option
@pass_cli
def history(cli: CliContext) -> None:
    """List the revisions this joobq-sql ships, oldest first (needs no database)."""
    from .. import migrate as migrations

    revisions = migrations.history()
    head = migrations.head()
    if cli.json:
        emit_json([{"revision": r, "head": r == head} for r in revisions])
        return
    print_table(["revision", ""], [(r, "head" if r == head else "") for r in revisions])


@command.command()
@click.option("--from", "from_revision", metavar="REV", help="Start here (default: empty db).")
@click.option("--to", "to_revision", metavar="REV", default="head", show_default=True)
@pass_cli
def sql(cli: CliContext, from_revision: str | None, to_revision: str) -> None:
    """Print the upgrade as SQL for a DBA to review and run (needs no database)."""
    from .. import migrate as migrations

    with _revision_errors():
        script = migrations.offline_sql(
            schema=cli.schema, from_revision=from_revision, to_revision=to_revision
        )
    click.echo(script, nl=False)


@contextlib.contextmanager
def _revision_errors() -> Iterator[None]:
    """A revision Alembic cannot resolve is bad usage (exit 2), not a failure."""
    from alembic.util import CommandError

    try:
        yield
    except CommandError as exc:
        raise click.BadParameter(str(exc), param_hint="revision") from None
