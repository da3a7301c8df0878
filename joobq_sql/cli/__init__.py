"""The `joobq-sql` command line (also `python -m joobq_sql`).

One module per command group; this one holds the global options and the error handling that
turns every known failure into one line on stderr with exit code 1 (2 for bad usage).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

import click

from ..store.postgres.schema import validate_schema_name
from ._context import CliContext
from ._errors import CliError, translate


class _Root(click.Group):
    """The root group: known failures become `error: ...` lines, never tracebacks."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort, BrokenPipeError):
            raise  # main() reports these
        except Exception as exc:
            cli_ctx = ctx.find_object(CliContext) or CliContext()
            error = translate(
                exc,
                where=_safe(cli_ctx.where),
                source=cli_ctx.advice_target(),
                schema=cli_ctx.schema,
            )
            if error is None:
                if cli_ctx.traceback:
                    raise
                error = CliError(
                    f"unexpected {type(exc).__name__}: {exc} (run with --traceback for details)"
                )
            raise error from None


def _safe(describe: Callable[[], str]) -> str:
    try:
        return describe()
    except Exception:
        return "the configured server"


def _schema(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    try:
        return validate_schema_name(value)
    except (TypeError, ValueError) as exc:
        raise click.BadParameter(str(exc)) from None


@click.group(cls=_Root, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--database-url",
    metavar="URL",
    help="PostgreSQL URL. Default: $JOOBQ_DATABASE_URL, else $DATABASE_URL, else the embedded "
    "PostgreSQL (started and migrated on demand).",
)
@click.option(
    "--schema",
    default="joobq",
    show_default=True,
    envvar="JOOBQ_SCHEMA",
    callback=_schema,
    help="The schema holding joobq's tables ($JOOBQ_SCHEMA).",
)
@click.option("--json", "json_output", is_flag=True, help="Print JSON instead of tables.")
@click.option("--traceback", is_flag=True, help="Show the traceback of an unexpected error.")
@click.version_option(package_name="joobq-sql", prog_name="joobq-sql")
@click.pass_context
def cli(
    ctx: click.Context,
    database_url: str | None,
    schema: str,
    json_output: bool,
    traceback: bool,
) -> None:
    """Operate joobq-sql job queues on PostgreSQL.

    Exit codes: 0 success, 1 failure, 2 bad usage.
    """
    obj = ctx.ensure_object(CliContext)
    obj.database_url = database_url.strip() if database_url else None
    obj.schema = schema
    obj.json = obj.json or json_output
    obj.traceback = traceback
    ctx.call_on_close(obj.close)


def _register() -> None:
    from . import bench, db, dead, demo, enqueue, jobs, migrate, prune, queues, stats, web, worker

    for module in (migrate, worker, enqueue, stats, jobs, dead, prune, queues, db, demo):
        cli.add_command(module.command)
    cli.add_command(bench.command)  # a source checkout's bench/run.py (not in the wheel)
    cli.add_command(web.command)  # the REST API, dashboard and /metrics (the web extra)
    from . import doctor

    cli.add_command(doctor.command)  # health check: exit 1 with the reason when unhealthy


_register()


def main(argv: Sequence[str] | None = None) -> None:
    """Run the command line (the `joobq-sql` console script); exit with its code.

    click's own handling would print bad usage as three lines (usage, hint, error); here it is
    one line like every other error, still with exit code 2.
    """
    try:
        code = cli.main(
            args=list(argv) if argv is not None else None,
            prog_name="joobq-sql",
            standalone_mode=False,
        )
    except click.UsageError as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # click >= 8.2: a group, no command
            click.echo(exc.format_message(), err=True)  # the message is the group's help
            sys.exit(exc.exit_code)
        hint = f" (see: {exc.ctx.command_path} --help)" if exc.ctx is not None else ""
        click.echo(f"error: {exc.format_message()}{hint}", err=True)
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.Abort as exc:
        interrupted = isinstance(exc.__context__, KeyboardInterrupt)
        click.echo("interrupted" if interrupted else "aborted", err=True)
        sys.exit(130 if interrupted else 1)
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, and keep Python from complaining
        # about stdout at exit.
        # (the recipe of Python's documentation on SIGPIPE).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
