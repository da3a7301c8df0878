"""`joobq-sql prune`: run the cleaning maintenance duties once, to the end, now."""

from __future__ import annotations

from collections.abc import Callable

import click

from ._context import CliContext, json_option, pass_cli
from ._output import emit_json, progress_bar

BATCH = 1000


@click.command(name="prune", short_help="Expire, purge and prune old jobs now.")
@json_option
@pass_cli
def command(cli: CliContext) -> None:
    """Expire waiting jobs past their expiry, purge dead jobs past their purge time, and delete
    kept completed jobs past their retention. Workers do this as they run; this does it now."""
    store = cli.store()
    # Expire first: it makes dead letters, which the purge leaves alone until their own time.
    duties: list[tuple[str, str, Callable[[], int]]] = [
        ("expired", "expire waiting jobs", lambda: len(store.expire_waiting_jobs(limit=BATCH))),
        ("dead_purged", "purge dead jobs", lambda: store.purge_dead(limit=BATCH)),
        ("completed_pruned", "prune completed jobs", lambda: store.prune_completed(limit=BATCH)),
    ]
    counts: dict[str, int] = {}
    for key, description, run in duties:
        counts[key] = 0
        with progress_bar(description, None) as advance:
            while True:
                done = run()
                counts[key] += done
                advance(done)
                if done < BATCH:
                    break
    if cli.json:
        emit_json(counts)
    else:
        click.echo(
            f"expired {counts['expired']} waiting jobs, purged {counts['dead_purged']} dead "
            f"jobs, pruned {counts['completed_pruned']} completed jobs"
        )
