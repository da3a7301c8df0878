"""GET /metrics: Prometheus text that prometheus_client's parser reads, with values that match
the database, and the perform/claim histograms of workers running in the same process."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from joobq_sql import Job, JoobQ, MemoryStore
from joobq_sql.web.metrics.exposition import Family, render
from joobq_sql.web.metrics.run_metrics import Histogram
from tests.conftest import libpq_url
from tests.helpers import wait_until
from tests.runtime_support import start
from tests.test_web_support import MAIL, REPORTS, WebEmail, WebReport, fail_queue

pytest_plugins = ["tests.test_web_support"]

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(client: httpx.Client) -> tuple[Samples, dict[str, str]]:
    """The samples by (name, sorted labels), and each family's type, as Prometheus reads them."""
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples: Samples = {}
    types: dict[str, str] = {}
    for family in text_string_to_metric_families(response.text):
        types[family.name] = family.type
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples, types


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def test_queue_depth_and_totals_match_queue_stats(client: httpx.Client, web_app: JoobQ) -> None:
    for i in range(4):
        WebEmail.enqueue(to=str(i))
    WebEmail.delay(3600, to="later")
    web_app.store.claim_jobs(MAIL, "w", 1)
    WebReport.enqueue(name="a")
    WebReport.enqueue(name="b")
    fail_queue(web_app, REPORTS, retry_in=3600)
    web_app.pause(REPORTS)
    samples, types = scrape(client)
    stats = web_app.stats()
    for queue in (MAIL, REPORTS):
        s = stats[queue]
        for state in ("waiting", "due_later", "running", "retrying", "dead", "completed"):
            got = value(samples, "joobq_queue_jobs", queue=queue, state=state)
            assert got == getattr(s, state), (queue, state)
        assert value(samples, "joobq_jobs_completed_total", queue=queue) == s.totals["completed"]
        assert value(samples, "joobq_jobs_retried_total", queue=queue) == s.totals["retried"]
        assert value(samples, "joobq_jobs_dead_total", queue=queue) == s.totals["dead"]
        assert value(samples, "joobq_jobs_expired_total", queue=queue) == s.totals["expired"]
        assert value(samples, "joobq_leases_rescued_total", queue=queue) == s.totals["rescued"]
        failed = s.totals["retried"] + s.totals["dead"]
        assert value(samples, "joobq_jobs_failed_total", queue=queue) == failed
    assert value(samples, "joobq_queue_jobs", queue=MAIL, state="waiting") == 3
    assert value(samples, "joobq_queue_jobs", queue=MAIL, state="due_later") == 1
    assert value(samples, "joobq_queue_jobs", queue=REPORTS, state="retrying") == 2
    assert value(samples, "joobq_jobs_retried_total", queue=REPORTS) == 2
    assert value(samples, "joobq_queue_paused", queue=REPORTS) == 1
    assert value(samples, "joobq_queue_paused", queue=MAIL) == 0
    oldest = value(samples, "joobq_queue_oldest_waiting_age_seconds", queue=MAIL)
    assert oldest == pytest.approx(stats[MAIL].oldest_waiting_age, abs=2)
    assert types["joobq_jobs_completed"] == "counter"
    assert types["joobq_queue_jobs"] == "gauge"


def test_dead_tuples_match_pg_stat_user_tables(
    client: httpx.Client, web_app: JoobQ, pg: psycopg.Connection
) -> None:
    for i in range(30):
        WebEmail.enqueue(to=str(i))
    pg.execute("DELETE FROM joobq.jobs WHERE queue = %s", (MAIL,))
    query = (
        "SELECT n_dead_tup FROM pg_stat_user_tables WHERE schemaname = 'joobq' AND relname = 'jobs'"
    )

    def settled_match() -> bool:
        before = pg.execute(query).fetchone()[0]
        scraped = value(scrape(client)[0], "joobq_jobs_table_dead_tuples")
        after = pg.execute(query).fetchone()[0]
        return before == after and scraped == before and before >= 30

    wait_until(settled_match, timeout=15, interval=0.2, what="n_dead_tup to reach the metric")


def test_the_oldest_open_transaction_is_measured(client: httpx.Client, database_url: str) -> None:
    with psycopg.connect(libpq_url(database_url)) as idle:
        idle.execute("SELECT txid_current()")  # opens a transaction, left open
        opened = time.monotonic()
        time.sleep(1.0)
        age = value(scrape(client)[0], "joobq_oldest_transaction_age_seconds")
        held = time.monotonic() - opened
        assert 1.0 <= age <= held + 1.0
        idle.rollback()
    quiet = value(scrape(client)[0], "joobq_oldest_transaction_age_seconds")
    assert quiet < 1.0


class WebTimed(Job):
    queue = "web-timed"
    retries = 0
    fail: bool = False

    def perform(self) -> None:
        time.sleep(0.03)
        if self.fail:
            raise ValueError("failed on purpose")


def test_perform_duration_and_claim_latency_come_from_workers_in_this_process(
    make_app: Callable[..., JoobQ], serve: Callable[..., httpx.Client]
) -> None:
    app = make_app()
    app.queue("web-timed", workers=2, jobs=[WebTimed])
    client = serve(app)  # installs the timing middleware before the workers start
    for _ in range(3):
        WebTimed.enqueue()
    WebTimed.enqueue(fail=True)
    start(app)
    wait_until(
        lambda: (
            app.stats()["web-timed"].totals["completed"] == 3 and app.stats()["web-timed"].dead == 1
        ),
        timeout=15,
        what="the four jobs to finish",
    )
    samples, types = scrape(client)
    assert types["joobq_perform_duration_seconds"] == "histogram"
    labels = {"queue": "web-timed", "job_type": "WebTimed"}
    completed = value(
        samples, "joobq_perform_duration_seconds_count", **labels, outcome="completed"
    )
    failed = value(samples, "joobq_perform_duration_seconds_count", **labels, outcome="failed")
    assert (completed, failed) == (3, 1)
    total = value(samples, "joobq_perform_duration_seconds_sum", **labels, outcome="completed")
    assert 3 * 0.03 <= total < 3 * 2.0
    fast = value(
        samples, "joobq_perform_duration_seconds_bucket", **labels, outcome="completed", le="0.01"
    )
    assert fast == 0  # each perform sleeps 30 ms
    everything = value(
        samples, "joobq_perform_duration_seconds_bucket", **labels, outcome="completed", le="+Inf"
    )
    assert everything == 3
    assert value(samples, "joobq_claim_latency_seconds_count", queue="web-timed") == 4
    assert value(samples, "joobq_claim_latency_seconds_sum", queue="web-timed") >= 0


def test_the_middleware_is_installed_once_however_many_apps_are_made(
    make_app: Callable[..., JoobQ], serve: Callable[..., httpx.Client]
) -> None:
    app = make_app()
    serve(app)
    serve(app)
    assert sum(type(m).__name__ == "RunMetrics" for m in app.middlewares) == 1


def test_with_a_memory_store_the_database_metrics_are_left_out(
    serve: Callable[..., httpx.Client],
) -> None:
    app = JoobQ(store=MemoryStore())
    try:
        samples, types = scrape(serve(app))
    finally:
        app.close()
    assert "joobq_jobs_table_dead_tuples" not in types
    assert value(samples, "joobq_oldest_transaction_age_seconds") == 0


def test_label_values_are_escaped_and_histograms_are_cumulative() -> None:
    histogram = Histogram(("queue",), buckets=(0.1, 1.0))
    for seconds in (0.05, 0.1, 0.5, 7):
        histogram.observe(seconds, 'we"ird\\que\nue')
    text = render([histogram.family("h_seconds", "help"), _gauge()])
    families = {f.name: f for f in text_string_to_metric_families(text)}
    buckets = [
        (s.labels["le"], s.value)
        for s in families["h_seconds"].samples
        if s.name.endswith("_bucket")
    ]
    assert buckets == [("0.1", 2), ("1.0", 3), ("+Inf", 4)]
    assert families["h_seconds"].samples[0].labels["queue"] == 'we"ird\\que\nue'
    assert families["g"].samples[0].value == 1.5


def _gauge() -> Family:
    family = Family("g", "gauge", "a gauge\nwith two lines")
    family.add(1.5)
    return family


def test_a_failed_database_read_is_503(
    make_app: Callable[..., JoobQ], serve: Callable[..., httpx.Client]
) -> None:
    from joobq_sql import PostgresStore

    app = make_app(store=PostgresStore("postgresql+psycopg://u:pw@127.0.0.1:1/x"))
    response = serve(app).get("/metrics")
    assert response.status_code == 503 and "pw" not in response.text


def test_an_awaited_perform_is_timed_when_it_finishes() -> None:
    """Queues in async mode hand middlewares the perform's coroutine: it is timed to its end."""
    import asyncio
    from datetime import UTC, datetime
    from uuid import uuid4

    from joobq_sql import JobRecord, JobStatus
    from joobq_sql.runtime.middleware import JobContext
    from joobq_sql.web.metrics.run_metrics import RunMetrics

    now = datetime.now(UTC)
    record = JobRecord(
        jid=uuid4(), queue="q", job_type="T", args={}, status=JobStatus.RUNNING, priority=0,
        run_at=now, attempt=1, max_retries=0, expires_at=None, worker_id="w",
        lease_expires_at=now, last_error=None, errors=[], dead_reason=None,
        dead_expires_at=None, created_at=now, updated_at=now, finished_at=None,
    )  # fmt: skip
    metrics = RunMetrics()

    async def perform() -> str:
        await asyncio.sleep(0.05)
        return "done"

    timed = metrics(WebTimed(), JobContext(record=record, worker_id="w", queue="q"), perform)
    assert asyncio.run(timed) == "done"
    (family, _) = metrics.families()
    sums = [v for suffix, labels, v in family.samples if suffix == "_sum"]
    assert len(sums) == 1 and sums[0] >= 0.05
