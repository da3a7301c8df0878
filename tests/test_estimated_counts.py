"""Estimated queue counts are marked wherever they are shown.

A PostgresStore counts at most STATS_EXACT_LIMIT rows of each part of a queue exactly and
estimates beyond (store/postgres/queue_stats.py), so that stats() costs what the queues cost.
Such a queue's QueueStats says `estimated`; `joobq-sql stats` (and `--watch`, which draws the
same table), the dashboard's queue table and the API mark its counts as estimates ("≈"), and
/metrics has a gauge joobq_queue_jobs_estimated that is 1 for it. Running jobs are always
counted exactly, so they are never marked.
"""

from __future__ import annotations

import io
import json
import re
import uuid

import httpx
from rich.console import Console

from joobq_sql import JoobQ, NewJob, PostgresStore, QueueStats
from joobq_sql.cli.stats import stats_table
from joobq_sql.store.postgres.queue_stats import STATS_EXACT_LIMIT
from joobq_sql.web.metrics.endpoint import queue_families
from tests.cli_app import run_cli_in_process
from tests.test_web_metrics import scrape, value
from tests.test_web_support import MAIL, REPORTS

pytest_plugins = ["tests.test_web_support"]

BACKLOG = STATS_EXACT_LIMIT + 50


def fill(store: PostgresStore, queue: str, n: int, job_type: str = "Ping") -> None:
    store.enqueue_jobs(
        [NewJob(jid=uuid.uuid4(), queue=queue, job_type=job_type, args={}) for _ in range(n)]
    )


def rendered(table: object) -> str:
    console = Console(width=300, file=io.StringIO())
    console.print(table)
    return console.file.getvalue()  # type: ignore[attr-defined]


def test_a_queue_past_the_exact_limit_is_estimated(pg_store: PostgresStore) -> None:
    fill(pg_store, "long", BACKLOG)
    fill(pg_store, "short", 3)
    stats = pg_store.queue_stats()
    assert stats["long"].estimated and not stats["short"].estimated


def test_the_stats_table_marks_an_estimated_queues_counts() -> None:
    """The table `stats` prints, and `stats --watch` redraws."""
    estimated = QueueStats(queue="long", waiting=12000, running=4, dead=7, estimated=True)
    exact = QueueStats(queue="short", waiting=3, running=1)
    lines = rendered(stats_table({"long": estimated, "short": exact})).splitlines()
    (long_line,) = [line for line in lines if line.strip().startswith("long")]
    (short_line,) = [line for line in lines if line.strip().startswith("short")]
    assert "≈12000" in long_line and "≈7" in long_line
    assert "≈4" not in long_line  # running jobs are counted exactly
    assert "≈" not in short_line


def test_stats_marks_estimated_counts_in_its_table_and_json(
    database_url: str, pg_store: PostgresStore
) -> None:
    fill(pg_store, "long", BACKLOG)
    fill(pg_store, "short", 3)
    table = run_cli_in_process(database_url, "stats")
    assert table.returncode == 0, table.stderr
    (long_line,) = [line for line in table.stdout.splitlines() if line.strip().startswith("long")]
    (short_line,) = [line for line in table.stdout.splitlines() if "short" in line]
    assert re.search(r"≈\d+", long_line) and "≈" not in short_line
    document = json.loads(run_cli_in_process(database_url, "stats", "--json").stdout)
    by_queue = {q["queue"]: q for q in document["queues"]}
    assert by_queue["long"]["estimated"] is True and by_queue["short"]["estimated"] is False
    assert by_queue["long"]["waiting"] >= STATS_EXACT_LIMIT  # still a number


def test_metrics_has_a_gauge_saying_which_queues_counts_are_estimates() -> None:
    stats = {
        "long": QueueStats(queue="long", waiting=12000, estimated=True),
        "short": QueueStats(queue="short", waiting=3),
    }
    families = {f.name: f for f in queue_families(stats, paused={"idle"})}
    assert "joobq_queue_jobs_estimated" in families


def test_the_dashboard_and_metrics_mark_an_estimated_queue(
    client: httpx.Client, web_app: JoobQ
) -> None:
    assert isinstance(web_app.store, PostgresStore)
    fill(web_app.store, MAIL, BACKLOG, job_type="WebEmail")
    fill(web_app.store, REPORTS, 2, job_type="WebReport")

    page = client.get("/").text
    body = page.split('id="queues"', 1)[1].split("</table>", 1)[0]
    mail = re.search(rf'<tr data-queue="{MAIL}".*?</tr>', body, flags=re.S)
    reports = re.search(rf'<tr data-queue="{REPORTS}".*?</tr>', body, flags=re.S)
    assert mail and reports
    assert re.search(r'<td class="num"[^>]*>≈\d+', mail.group(0)), mail.group(0)
    assert "≈" not in reports.group(0)

    queues = {q["queue"]: q for q in client.get("/joobq/queues").json()["queues"]}
    assert queues[MAIL]["estimated"] is True and queues[REPORTS]["estimated"] is False

    samples, types = scrape(client)
    assert types["joobq_queue_jobs_estimated"] == "gauge"
    assert value(samples, "joobq_queue_jobs_estimated", queue=MAIL) == 1
    assert value(samples, "joobq_queue_jobs_estimated", queue=REPORTS) == 0
    # the figures themselves stay numbers, as exact ones are
    assert value(samples, "joobq_queue_jobs", queue=MAIL, state="waiting") >= STATS_EXACT_LIMIT
