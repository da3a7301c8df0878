"""`joobq-sql dead list|retry|purge`: the dead letters (jobs out of retries, expired,
cancelled or unrunnable), kept until their purge time."""

from __future__ import annotations

from uuid import UUID

import click

from ..status import JobStatus
from ._context import CliContext, existing_queue_name, json_option, pass_cli
from ._output import emit_json, progress_bar
from .jobs import print_records, report_unchanged

BATCH = 1000


@click.group(name="dead")
def command() -> None:
    """List, retry and purge dead jobs."""


@command.command(name="list")
@click.option("--queue", callback=existing_queue_name, help="Only this queue.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@click.option("--offset", type=click.IntRange(min=0), default=0, show_default=True)
@json_option
@pass_cli
def list_dead(cli: CliContext, queue: str | None, limit: int, offset: int) -> None:
    """List dead jobs, newest first, with why they died and when they will be purged."""
    records = cli.store().search_jobs(
        queue=queue, status=JobStatus.DEAD, offset=offset, limit=limit
    )
    print_records(cli, records, dead=True)


@command.command()
@click.argument("jids", nargs=-1, type=click.UUID)
@click.option("--all", "everything", is_flag=True, help="Retry every dead job (of --queue).")
@click.option("--queue", callback=existing_queue_name, help="With --all: only this queue.")
@json_option
@pass_cli
def retry(cli: CliContext, jids: tuple[UUID, ...], everything: bool, queue: str | None) -> None:
    """Run dead jobs again with a fresh retry budget (their error history is kept)."""
    if bool(jids) == everything:
        raise click.UsageError("give the jids of dead jobs, or --all")
    if queue is not None and not everything:
        raise click.UsageError("--queue goes with --all")
    store = cli.store()
    if jids:
        changed = store.retry_jobs(list(jids))
        _print_count(cli, "retried", len(changed))
        report_unchanged(cli, jids, set(changed), "retried")
        return
    stats = store.queue_stats()
    total = sum(s.dead for name, s in stats.items() if queue is None or name == queue)
    retried = 0
    with progress_bar("retry dead jobs", total) as advance:
        while True:
            batch = store.retry_dead(queue=queue, limit=BATCH)
            retried += len(batch)
            advance(len(batch))
            if len(batch) < BATCH:
                break
    _print_count(cli, "retried", retried)


@command.command()
@click.option("--queue", callback=existing_queue_name, help="Only this queue.")
@click.option(
    "--expired-only", is_flag=True, help="Only those past their purge time (what maintenance does)."
)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@json_option
@pass_cli
def purge(cli: CliContext, queue: str | None, expired_only: bool, yes: bool) -> None:
    """Delete dead jobs now (all of them, or of --queue; asks first unless --yes)."""
    store = cli.store()
    if expired_only and queue is not None:
        raise click.UsageError("--expired-only purges every queue; drop --queue")
    if not expired_only:
        scope = f"queue {queue!r}" if queue else "every queue"
        if not yes and not click.confirm(f"delete every dead job of {scope}?", err=True):
            raise click.exceptions.Exit(1)

    def delete() -> int:
        if expired_only:
            return store.purge_dead(limit=BATCH)
        return store.delete_dead(queue=queue, limit=BATCH)

    deleted = 0
    with progress_bar("purge dead jobs", None) as advance:
        while True:
            count = delete()
            deleted += count
            advance(count)
            if count < BATCH:
                break
    _print_count(cli, "purged", deleted)


def _print_count(cli: CliContext, verb: str, count: int) -> None:
    if cli.json:
        emit_json({verb: count})
    else:
        click.echo(f"{verb} {count} dead jobs")
