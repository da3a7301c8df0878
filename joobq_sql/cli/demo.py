"""`joobq-sql demo`: watch the whole system work, on the embedded database by default.

Progress goes to stderr (a live table on a terminal, else one line a second), the summary
table to stdout (JSON with --json), so that the summary can be piped and checked.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import click
from rich.console import Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.text import Text

from ._context import CliContext, json_option, pass_cli
from ._errors import CliError
from ._output import emit_json, make_table, stderr_console, stdout_console

LIVE_COLUMNS = ["kind", "shows", "waiting", "running", "retrying", "completed", "dead", "runs"]
SUMMARY_COLUMNS = ["kind", "queue", "shows", "enqueued", "completed", "dead", "runs"]


@click.command(name="demo", short_help="Watch a mix of jobs run (embedded database).")
@click.option("--verbose", is_flag=True, help="Show the workers' log on stderr.")
@json_option
@pass_cli
def command(cli: CliContext, verbose: bool) -> None:
    """Run a mix of jobs (succeeding, flaky, failing, delayed, expiring, recurring) through
    real workers, show live progress, and print a summary when every job is done."""
    from .. import demo
    from ..migrate import upgrade
    from ..store.postgres.store import PostgresStore

    if verbose:
        logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(name)s: %(message)s")
    else:
        # The webhooks fail on purpose: their warnings are the demo, not news.
        logging.getLogger("joobq_sql").addHandler(logging.NullHandler())
    url = cli.url(migrate=True)
    if not cli.embedded:
        upgrade(url, schema=cli.schema)  # the demo migrates any database it is pointed at
    # Completed jobs are kept for an hour, so that the counts come from the database.
    store = PostgresStore(url, schema=cli.schema, keep_completed=3600, pool_size=10)
    try:
        with _Progress() as progress:
            states = demo.run_demo(store, on_progress=progress.update)
        elapsed = progress.elapsed
    except TimeoutError as exc:
        raise CliError(str(exc)) from None
    finally:
        store.close()
    if cli.json:
        emit_json({"seconds": round(elapsed, 2), "kinds": [s.document() for s in states]})
    else:
        rows = [
            (s.kind.name, s.kind.queue, s.kind.shows, s.enqueued, s.completed, s.dead, s.runs)
            for s in states
        ]
        stdout_console().print(make_table(SUMMARY_COLUMNS, rows, title="joobq-sql demo summary"))
        click.echo(f"every job reached its final state in {elapsed:.1f}s")
    wrong = [s.kind.name for s in states if not s.as_expected]
    if wrong:
        raise CliError(f"unexpected outcome for {', '.join(wrong)}: see the summary")


class _Progress:
    """Live table and bar on a terminal; a plain line every second otherwise."""

    def __init__(self) -> None:
        self.console = stderr_console()
        self.live: Live | None = None
        self.elapsed = 0.0
        self._last_line = -1.0

    def __enter__(self) -> _Progress:
        if self.console.is_terminal:
            self.live = Live(console=self.console, auto_refresh=False, transient=True)
            self.live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.live is not None:
            self.live.__exit__(*exc)

    def update(self, states: list[Any], elapsed: float) -> None:
        self.elapsed = elapsed
        total = sum(s.enqueued for s in states)
        final = sum(s.final for s in states)
        if self.live is not None:
            rows = [
                (
                    s.kind.name,
                    s.kind.shows,
                    s.waiting,
                    s.running,
                    s.retrying,
                    s.completed,
                    s.dead,
                    s.runs,
                )
                for s in states
            ]
            bar = ProgressBar(total=max(total, 1), completed=final, width=40)
            label = Text(f" {final}/{total} jobs done, {elapsed:.1f}s")
            self.live.update(Group(make_table(LIVE_COLUMNS, rows), bar, label), refresh=True)
        elif elapsed - self._last_line >= 1.0 or (final == total and self._last_line < 0):
            self._last_line = elapsed
            parts = ", ".join(
                f"{name} {sum(getattr(s, name) for s in states)}"
                for name in ("waiting", "running", "retrying", "completed", "dead")
            )
            click.echo(f"demo {elapsed:4.1f}s: {final}/{total} done ({parts})", err=True)
            time.sleep(0)  # keep the line order with the workers' threads
