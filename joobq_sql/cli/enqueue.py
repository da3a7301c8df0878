"""`joobq-sql enqueue JOB_TYPE`: one job from --args, or many from a JSON-lines --file.

Without --app any job_type is accepted (the worker validates it when it claims the job); with
--app the application is imported, so its job classes register, and each args object is
decoded by its class first, which also supplies the class's queue, retries and expiry.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

import click

from .._uuid7 import uuid7
from ..errors import ConfigurationError, JoobQError
from ..job import Job
from ..settings import Settings, check_bound, parse_duration
from ..store.records import NewJob
from ._apps import import_app
from ._context import CliContext, job_type_name, json_option, pass_cli, queue_name
from ._errors import CliError
from ._output import emit_json, progress_bar

BATCH = 1000


def _duration(_ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    """The option's duration in seconds, within its range (settings.BOUNDS), the value named
    as it was written when it is out of range."""
    if value is None:
        return None
    name = param.name or "delay"
    try:
        return check_bound(name, parse_duration(value, setting=name), shown=repr(value))
    except ConfigurationError as exc:
        raise click.BadParameter(str(exc), param=param) from None


def _aware_time(_ctx: click.Context, param: click.Parameter, value: str | None) -> datetime | None:
    """An ISO 8601 time with a zone: a naive one would mean whatever zone the server is in."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not an ISO 8601 time, e.g. 2030-01-31T09:00:00+00:00", param=param
        ) from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise click.BadParameter(
            f"{value!r} has no time zone; add one, e.g. {value}+00:00 or {value}Z", param=param
        )
    return moment


def _args_object(text: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{what} is not valid JSON ({exc})") from None
    except RecursionError:
        raise ValueError(f"{what} are nested too deeply (over ~1,000 levels)") from None
    if not isinstance(value, dict):
        raise ValueError(f"{what} must be a JSON object, got {type(value).__name__}")
    return value


@click.command(name="enqueue", short_help="Enqueue a job, or many from a file.")
@click.argument("job_type", callback=job_type_name)
@click.option("--args", "args_text", metavar="JSON", help="The job's args, a JSON object.")
@click.option(
    "--file",
    "file",
    type=click.File("r", encoding="utf-8"),
    metavar="PATH",
    help="Enqueue one job per line: each line an args object (JSON lines).",
)
@click.option(
    "--queue", callback=queue_name, help="Queue (default: the class's, else the default queue)."
)
@click.option(
    "--delay", callback=_duration, metavar="SECONDS", help="Run after this long (30, 30s, 5m)."
)
@click.option(
    "--at",
    "run_at",
    callback=_aware_time,
    metavar="ISO8601",
    help="Run at this time zone-aware time.",
)
@click.option("--priority", type=click.IntRange(-32768, 32767), help="Higher runs first.")
@click.option(
    "--app",
    "app_reference",
    metavar="MODULE:ATTR",
    help="Import this application and validate args with the job's class.",
)
@json_option
@pass_cli
def command(
    cli: CliContext,
    job_type: str,
    args_text: str | None,
    file: TextIO | None,
    queue: str | None,
    delay: float | None,
    run_at: datetime | None,
    priority: int | None,
    app_reference: str | None,
) -> None:
    """Enqueue a JOB_TYPE job; print its jid."""
    if args_text is not None and file is not None:
        raise click.UsageError("give --args or --file, not both")
    if delay is not None and run_at is not None:
        raise click.UsageError("give --delay or --at, not both")
    build = _JobBuilder(job_type, queue, delay, run_at, priority, app_reference)
    if file is not None:
        _enqueue_file(cli, build, file)
        return
    try:
        job = build(_args_object(args_text or "{}", "--args"))
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    (jid,) = cli.store().enqueue_jobs([job])
    if cli.json:
        emit_json({"jid": jid, "job_type": job.job_type, "queue": job.queue, "status": job.status})
    else:
        click.echo(str(jid))


class _JobBuilder:
    """Builds the NewJob for one args object, the same way for --args and every --file line."""

    def __init__(
        self,
        job_type: str,
        queue: str | None,
        delay: float | None,
        run_at: datetime | None,
        priority: int | None,
        app_reference: str | None,
    ) -> None:
        self.job_type = job_type
        self.queue = queue
        self.priority = priority
        self.delay = delay or 0.0
        self.run_at = run_at
        self.app = import_app(app_reference) if app_reference else None
        self.klass: type[Job] | None = None
        if self.app is not None:
            from ..job import job_class

            try:
                self.klass = job_class(job_type)
            except JoobQError as exc:
                raise click.BadParameter(str(exc), param_hint="JOB_TYPE") from None
            self.settings = self.app.settings
        else:
            self.settings = Settings.build()[0]

    def __call__(self, args: dict[str, Any]) -> NewJob:
        """The row for `args`; ValueError (or TypeError) says why it cannot be one."""
        try:
            if self.klass is not None and self.app is not None:
                job = self.klass.from_args(args)
                return self.app.new_job(
                    job,
                    queue=self.queue,
                    priority=self.priority,
                    delay=self.delay,
                    run_at=self.run_at,
                )
            return NewJob(
                jid=uuid7(),
                queue=self.queue or self.settings.default_queue,
                job_type=self.job_type,
                args=args,
                priority=self.priority or 0,
                max_retries=self.settings.retries,
                delay=self.delay,
                run_at=self.run_at,
                expires_in=self.settings.expires,
            )
        except (JoobQError, TypeError, ValueError) as exc:
            raise ValueError(str(exc)) from None


def _lines(file: TextIO) -> Iterator[tuple[int, str]]:
    for number, line in enumerate(file, start=1):
        if line.strip():
            yield number, line


def _enqueue_file(cli: CliContext, build: _JobBuilder, file: TextIO) -> None:
    """One transaction per batch of BATCH lines; a bad line stops the run and nothing of its
    batch is written (earlier batches stay written, and the message says how many)."""
    name = getattr(file, "name", "-")
    total = None
    if name not in ("-", "<stdin>") and Path(name).is_file():
        with open(name, encoding="utf-8") as counting:
            total = sum(1 for line in counting if line.strip())
    store = cli.store()
    written = 0
    batch: list[NewJob] = []
    with progress_bar(f"enqueue {build.job_type}", total) as advance:
        for number, line in _lines(file):
            try:
                batch.append(build(_args_object(line, f"{name} line {number}")))
            except ValueError as exc:
                message = str(exc)
                if not message.startswith(f"{name} line"):
                    message = f"{name} line {number}: {message}"
                raise CliError(
                    f"{message}; nothing of its batch was written ({written} jobs before it were)"
                ) from None
            if len(batch) == BATCH:
                written += len(store.enqueue_jobs(batch, batch_size=BATCH))
                advance(len(batch))
                batch = []
        if batch:
            written += len(store.enqueue_jobs(batch, batch_size=BATCH))
            advance(len(batch))
    if cli.json:
        emit_json({"enqueued": written, "job_type": build.job_type})
    else:
        click.echo(f"enqueued {written} {build.job_type} jobs")
