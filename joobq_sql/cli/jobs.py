"""`joobq-sql jobs list|show|retry|cancel|delete`: find jobs and act on them by jid.

An action on several jids exits 1 when any of them could not be acted on, and says why for
each (unknown, or in a state that does not allow it), so that scripts notice.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any
from uuid import UUID

import click

from ..status import JobStatus
from ..store.records import JobRecord
from ._context import CliContext, existing_job_type, existing_queue_name, json_option, pass_cli
from ._errors import CliError
from ._output import echo, emit_json, print_table, safe_text, when

STATUSES = [status.value for status in JobStatus]


def list_options(function: Any) -> Any:
    for decorator in reversed(
        [
            click.option("--queue", callback=existing_queue_name, help="Only this queue."),
            click.option(
                "--type",
                "job_type",
                callback=existing_job_type,
                metavar="JOB_TYPE",
                help="Only this job type.",
            ),
            click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True),
            click.option("--offset", type=click.IntRange(min=0), default=0, show_default=True),
        ]
    ):
        function = decorator(function)
    return function


def print_records(cli: CliContext, records: Sequence[JobRecord], *, dead: bool = False) -> None:
    if cli.json:
        emit_json([record.to_document() for record in records])
        return
    rows: list[tuple[Any, ...]]
    if dead:
        columns = ["jid", "queue", "job type", "reason", "last error", "died", "purged at"]
        rows = [
            (
                r.jid,
                r.queue,
                r.job_type,
                r.dead_reason,
                _error_text(r),
                when(r.finished_at),
                when(r.dead_expires_at),
            )
            for r in records
        ]
    else:
        columns = ["jid", "queue", "job type", "status", "runs", "run at", "created", "last error"]
        rows = [
            (
                r.jid,
                r.queue,
                r.job_type,
                r.status.value,
                f"{r.attempt}/{r.max_retries + 1}",
                when(r.run_at),
                when(r.created_at),
                _error_text(r),
            )
            for r in records
        ]
    print_table(columns, rows)
    if not records:
        click.echo("no jobs found", err=True)


def _error_text(record: JobRecord, width: int = 60) -> str:
    error = record.last_error or {}
    text = str(error.get("message") or error.get("error_class") or "")
    kind = error.get("error_class")
    text = f"{kind}: {text}" if kind and text != kind else text
    return text if len(text) <= width else text[: width - 1] + "…"


@click.group(name="jobs")
def command() -> None:
    """List, show, retry, cancel and delete jobs."""


@command.command(name="list")
@list_options
@click.option("--status", type=click.Choice(STATUSES), help="Only jobs in this state.")
@json_option
@pass_cli
def list_jobs(
    cli: CliContext,
    queue: str | None,
    job_type: str | None,
    limit: int,
    offset: int,
    status: str | None,
) -> None:
    """List jobs, newest first."""
    records = cli.store().search_jobs(
        queue=queue,
        status=JobStatus(status) if status else None,
        job_type=job_type,
        offset=offset,
        limit=limit,
    )
    print_records(cli, records)


@command.command()
@click.argument("jid", type=click.UUID)
@json_option
@pass_cli
def show(cli: CliContext, jid: UUID) -> None:
    """Show one job: its args, state, and the errors of its failed runs."""
    record = cli.store().get_job(jid)
    if record is None:
        raise CliError(f"no job with jid {jid}")
    document = record.to_document()
    if cli.json:
        emit_json(document)
        return
    errors = document.pop("errors") or []
    document.pop("error", None)
    document["args"] = json.dumps(document["args"])
    print_table(["field", "value"], [(k, "-" if v is None else v) for k, v in document.items()])
    for number, error in enumerate(errors, start=1):
        attempt = f" (run {error['attempt']})" if error.get("attempt") is not None else ""
        kind = f"{error['error_class']}: " if error.get("error_class") else ""
        # One line per error, whatever its message holds: a newline in it cannot fake another.
        text = safe_text(f"{kind}{error.get('message', '')}", one_line=True)
        echo(f"error {number} of {len(errors)}{attempt}: {text}")
        if error.get("backtrace"):
            for line in str(error["backtrace"]).splitlines()[-6:]:
                echo(f"    {safe_text(line, one_line=True)}")


def report_unchanged(
    cli: CliContext, wanted: Sequence[UUID], changed: set[UUID], verb: str
) -> None:
    """Say why each jid of `wanted` not in `changed` was left alone; exit 1 if any was."""
    missed = [jid for jid in dict.fromkeys(wanted) if jid not in changed]
    if not missed:
        return
    store = cli.store()
    for jid in missed:
        record = store.get_job(jid)
        why = "no such job" if record is None else f"it is {record.status.value}"
        click.echo(f"error: job {jid} not {verb}: {why}", err=True)
    raise click.exceptions.Exit(1)


@command.command()
@click.argument("jids", nargs=-1, required=True, type=click.UUID)
@json_option
@pass_cli
def retry(cli: CliContext, jids: tuple[UUID, ...]) -> None:
    """Run jobs again now: dead ones with a fresh retry budget, waiting ones at once."""
    changed = cli.store().retry_jobs(list(jids))
    _done(cli, "retried", changed)
    report_unchanged(cli, jids, set(changed), "retried")


@command.command()
@click.argument("jids", nargs=-1, required=True, type=click.UUID)
@json_option
@pass_cli
def cancel(cli: CliContext, jids: tuple[UUID, ...]) -> None:
    """Cancel jobs: a waiting job goes dead (reason "cancelled"); a running job is asked to
    stop (cooperative: the job sees the request when it checks for it)."""
    outcome = cli.store().cancel_jobs(list(jids))
    if cli.json:
        emit_json({str(jid): state for jid, state in outcome.items()})
    else:
        for jid, state in outcome.items():
            click.echo(f"{jid} {'cancelled' if state == 'cancelled' else 'cancel requested'}")
    report_unchanged(cli, jids, set(outcome), "cancelled")


@command.command()
@click.argument("jids", nargs=-1, required=True, type=click.UUID)
@json_option
@pass_cli
def delete(cli: CliContext, jids: tuple[UUID, ...]) -> None:
    """Delete jobs in any state (a running job's finish is then ignored)."""
    unique = list(dict.fromkeys(jids))
    deleted = cli.store().delete_jobs(unique)
    if cli.json:
        emit_json({"deleted": deleted, "not_found": len(unique) - deleted})
    else:
        click.echo(f"deleted {deleted} of {len(unique)} jobs")
    if deleted < len(unique):
        click.echo(f"error: {len(unique) - deleted} of the jobs did not exist", err=True)
        raise click.exceptions.Exit(1)


def _done(cli: CliContext, verb: str, jids: Sequence[UUID]) -> None:
    if cli.json:
        emit_json({verb: [str(jid) for jid in jids]})
    else:
        for jid in jids:
            click.echo(f"{jid} {verb}")
