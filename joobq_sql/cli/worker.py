"""`joobq-sql worker --app module:attr`: run an application's queues, as `app.run()` does."""

from __future__ import annotations

import dataclasses
import logging
import os
import sys

import click
from click.core import ParameterSource

from ..app import JoobQ
from ._apps import import_app
from ._context import CliContext, check_migrated, pass_cli, start_embedded
from ._output import SafeLogFormatter
from ._supervisor import DEFAULT_MAX_RESTARTS, supervise, watch_supervisor

_LOG_LEVELS = ("debug", "info", "warning", "error")


@click.command(name="worker", short_help="Run an application's workers.")
@click.option(
    "--app",
    "app_reference",
    required=True,
    metavar="MODULE:ATTR",
    help="The JoobQ application, e.g. myproject.jobs:app.",
)
@click.option("--queues", metavar="A,B", help="Run only these queues (default: all).")
@click.option(
    "--processes",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Worker processes to run, each with every selected queue.",
)
@click.option(
    "--max-restarts",
    type=click.IntRange(min=0),
    default=DEFAULT_MAX_RESTARTS,
    show_default=True,
    metavar="N",
    help="With --processes: dead worker processes restarted within a minute, in all; one more "
    "and the others are stopped and the command exits 1 (0: the first death stops all).",
)
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    metavar="N",
    help="Jobs at once per queue and process (overrides each queue's workers).",
)
@click.option(
    "--until-empty",
    is_flag=True,
    help="Drain and exit 0 once the queues are empty: no job of them runnable now, none "
    "running here, every acknowledgement written (jobs due later do not keep it running). "
    "For batch runs and cron-driven workers; one process only.",
)
@click.option("--log-level", type=click.Choice(_LOG_LEVELS), default="info", show_default=True)
@pass_cli
@click.pass_context
def command(
    ctx: click.Context,
    cli: CliContext,
    app_reference: str,
    queues: str | None,
    processes: int,
    max_restarts: int,
    threads: int | None,
    until_empty: bool,
    log_level: str,
) -> None:
    """Run the application's workers until SIGTERM or SIGINT, then drain them and exit 0.

    --database-url and --schema reach the application as JOOBQ_DATABASE_URL and JOOBQ_SCHEMA
    (an application that sets its own database in code keeps it). With --processes N, N child
    processes run and each signal is passed on to them; a child that dies is restarted (after
    1 s, doubling to 30 s for a child that keeps dying), and one whose supervisor is gone,
    whatever killed it, drains and exits. With --until-empty it also drains and exits 0 once
    the selected queues are empty (see `JoobQ.run`).
    """
    if until_empty and processes > 1:
        # A supervisor restarts any child that exits; N drain-and-exit processes are N
        # commands (each exits when the queues are empty).
        raise click.UsageError(
            f"--until-empty runs one worker process, not --processes {processes}: "
            "start one `worker --until-empty` per process wanted"
        )
    _export_database_options(ctx, cli)
    app = import_app(app_reference)
    names = _selected_queues(app, queues)
    if app.uses_embedded_database:
        # The application falls back to the embedded server: start it here, once, say so, and
        # hand its URL to any child processes so that they do not race to start it too.
        os.environ["JOOBQ_DATABASE_URL"] = start_embedded(schema=app.settings.schema, migrate=True)
    else:
        cli._url = app.settings.database_url  # for the advice in error messages
    _check_store(app)
    if not logging.getLogger().handlers:  # the supervisor's lines look like its children's
        # Its lines may quote the database's text (a job type, an error): made terminal-safe.
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(SafeLogFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logging.basicConfig(level=log_level.upper(), handlers=[handler])
    if processes > 1:
        app.close()  # the children connect on their own; hold no idle connection here
        argv = _child_argv(cli, app_reference, queues, threads, log_level)
        ctx.exit(supervise(argv, processes, max_restarts=max_restarts))
    watch_supervisor()  # a child of `--processes N`: drain once the supervisor is gone
    if threads is not None:
        for name in names or list(app.queues):
            app.queues[name] = dataclasses.replace(app.queues[name], workers=threads)
    try:
        code = app.run(names, until_empty=until_empty)
    finally:
        app.close()
    ctx.exit(code)


def _export_database_options(ctx: click.Context, cli: CliContext) -> None:
    if cli.database_url:
        os.environ["JOOBQ_DATABASE_URL"] = cli.database_url
    root = ctx.find_root()
    if root.get_parameter_source("schema") is ParameterSource.COMMANDLINE:
        os.environ["JOOBQ_SCHEMA"] = cli.schema


def _selected_queues(app: JoobQ, queues: str | None) -> list[str] | None:
    if queues is None:
        return None
    names = list(dict.fromkeys(q.strip() for q in queues.split(",") if q.strip()))
    defined = app.queues
    unknown = [name for name in names if name not in defined]
    if not names or unknown:
        raise click.BadParameter(
            f"unknown queues {unknown or queues!r}; the application defines {sorted(defined)}",
            param_hint="'--queues'",
        )
    return names


def _check_store(app: JoobQ) -> None:
    """Fail now, with advice, if the database is unreachable or not migrated."""
    store = app.store
    if store.sql_engine is not None and store.schema is not None:
        check_migrated(store.sql_engine, store.schema)


def _child_argv(
    cli: CliContext, app_reference: str, queues: str | None, threads: int | None, log_level: str
) -> list[str]:
    argv = [sys.executable, "-m", "joobq_sql"]
    if cli.traceback:
        argv.append("--traceback")
    argv += ["worker", "--app", app_reference, "--processes", "1", "--log-level", log_level]
    if queues is not None:
        argv += ["--queues", queues]
    if threads is not None:
        argv += ["--threads", str(threads)]
    return argv
