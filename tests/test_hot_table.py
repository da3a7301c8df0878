"""A small hot table on a stock server (issue 15, item 6): the runtime vacuums joobq's jobs table
itself when dead row versions pass a share of it, since autovacuum's launcher visits a database
only every autovacuum_naptime (one minute by default, often out of a managed server user's
reach). Only the jobs table, never the database; one VACUUM at a time; a role that may not
VACUUM turns the duty off with one warning.

Autovacuum is turned off on the test's jobs table (a storage parameter), so that only the
duty vacuums it here.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy.engine import make_url

from joobq_sql import Job, JoobQ, PostgresStore
from joobq_sql.runtime.maintenance import TableVacuumer
from joobq_sql.runtime.worker import Worker
from joobq_sql.store.postgres.hot_table import TableHealth, VacuumRefusedError
from tests.conftest import libpq_url


@pytest.fixture(params=["postgres", "postgres15"])
def server_database_url(request: pytest.FixtureRequest) -> str:
    """A migrated, empty database on the main test server and on PostgreSQL 15."""
    fixture = "database_url" if request.param == "postgres" else "database_url_pg15"
    url: str = request.getfixturevalue(fixture)
    return url


@pytest.fixture
def conn(server_database_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(libpq_url(server_database_url), autocommit=True) as connection:
        connection.execute("ALTER TABLE joobq.jobs SET (autovacuum_enabled = off)")
        yield connection
        connection.execute("ALTER TABLE joobq.jobs RESET (autovacuum_enabled)")


@pytest.fixture
def store(server_database_url: str) -> Iterator[PostgresStore]:
    pg_store = PostgresStore(server_database_url, pool_size=2)
    yield pg_store
    pg_store.close()


def churn(conn: psycopg.Connection, jobs: int, *, kept: int = 0) -> None:
    """Insert `jobs` + `kept` jobs, then delete `jobs` of them: each deleted job leaves a dead
    row version. The session's statistics are flushed at once, so readers see them."""
    conn.execute(
        "INSERT INTO joobq.jobs (jid, queue, job_type, status) "
        "SELECT gen_random_uuid(), 'q', 'X', 'enqueued' FROM generate_series(1, %s)",
        (jobs + kept,),
    )
    conn.execute(
        "DELETE FROM joobq.jobs WHERE jid IN (SELECT jid FROM joobq.jobs ORDER BY id LIMIT %s)",
        (jobs,),
    )
    conn.execute("SELECT pg_stat_force_next_flush()")
    conn.execute("SELECT 1")  # the flush happens when the session is next idle


def vacuum_count(conn: psycopg.Connection) -> int:
    row = conn.execute(
        "SELECT vacuum_count FROM pg_stat_user_tables WHERE relid = 'joobq.jobs'::regclass"
    ).fetchone()
    assert row is not None
    return int(row[0])


def health(store: PostgresStore) -> TableHealth:
    (jobs,) = store.hot_table_health()
    return jobs


def test_the_health_of_the_jobs_table_counts_its_dead_row_versions(
    conn: psycopg.Connection, store: PostgresStore
) -> None:
    churn(conn, 3000, kept=1000)
    jobs = health(store)
    assert (jobs.table, jobs.live_rows, jobs.dead_rows) == ("jobs", 1000, 3000)
    assert jobs.dead_share == 0.75
    assert jobs.may_vacuum and not jobs.vacuuming


def test_a_table_past_the_dead_share_is_vacuumed_and_its_dead_versions_go(
    conn: psycopg.Connection, store: PostgresStore
) -> None:
    churn(conn, 3000, kept=1000)
    vacuums = vacuum_count(conn)
    duty = TableVacuumer(store, interval=0.01, dead_share=0.5)
    assert duty.run_once() == 3000
    assert vacuum_count(conn) == vacuums + 1
    assert health(store).dead_rows == 0
    assert duty.gap == duty.interval  # it removed them all: no longer wait


def test_a_table_below_the_dead_share_is_left_to_autovacuum(
    conn: psycopg.Connection, store: PostgresStore
) -> None:
    churn(conn, 1500, kept=5000)  # 23% dead
    vacuums = vacuum_count(conn)
    assert TableVacuumer(store, interval=0.01, dead_share=0.3).run_once() == 0
    assert TableVacuumer(store, interval=0.01, min_dead_rows=2000).run_once() == 0
    assert vacuum_count(conn) == vacuums


def test_a_table_another_vacuum_holds_is_skipped_not_waited_for(
    conn: psycopg.Connection, store: PostgresStore, server_database_url: str
) -> None:
    churn(conn, 3000)
    vacuums = vacuum_count(conn)
    with psycopg.connect(libpq_url(server_database_url)) as holder:
        # the lock a VACUUM (an autovacuum, another process's duty) holds on its table
        holder.execute("LOCK TABLE joobq.jobs IN SHARE UPDATE EXCLUSIVE MODE")
        assert store.vacuum_jobs_table() is False
        assert TableVacuumer(store, interval=0.01).run_once() == 0
        holder.rollback()
    assert vacuum_count(conn) == vacuums
    assert TableVacuumer(store, interval=0.01).run_once() == 3000


def test_a_vacuum_that_an_open_snapshot_keeps_from_removing_waits_longer_before_the_next(
    database_url: str, pg: psycopg.Connection
) -> None:
    pg.execute("ALTER TABLE joobq.jobs SET (autovacuum_enabled = off)")
    store = PostgresStore(database_url, pool_size=2)
    try:
        with psycopg.connect(libpq_url(database_url)) as reader:
            reader.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
            reader.execute("SELECT count(*) FROM joobq.jobs")  # its snapshot sees every row
            churn(pg, 3000)
            duty = TableVacuumer(store, interval=30)
            assert duty.run_once() == 0  # it ran, and could remove none of them
            assert duty.vacuums == 1 and duty.gap == 60
            assert duty.run_once() == 0 and duty.vacuums == 1  # not again within the gap
            reader.rollback()
    finally:
        store.close()
    assert vacuum_count(pg) == 1


@pytest.fixture
def maintainless_url(server_database_url: str, conn: psycopg.Connection) -> Iterator[str]:
    """The URL of a role with every data privilege on joobq's tables, but neither ownership
    of them nor (on 17+) MAINTAIN: it may not VACUUM them."""
    role = f"joobq_novacuum_{uuid.uuid4().hex[:8]}"
    conn.execute(f'CREATE ROLE "{role}" LOGIN')
    conn.execute(f'GRANT USAGE ON SCHEMA joobq TO "{role}"')
    conn.execute(f'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA joobq TO "{role}"')
    yield make_url(server_database_url).set(username=role).render_as_string(hide_password=False)
    conn.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (role,)
    )
    conn.execute(f'DROP OWNED BY "{role}"')
    conn.execute(f'DROP ROLE "{role}"')


def test_a_role_that_may_not_vacuum_is_refused_by_the_server_with_its_reason(
    maintainless_url: str, conn: psycopg.Connection
) -> None:
    churn(conn, 3000)
    vacuums = vacuum_count(conn)
    store = PostgresStore(maintainless_url, pool_size=1)
    try:
        assert health(store).may_vacuum is False
        with pytest.raises(VacuumRefusedError, match="jobs"):
            store.vacuum_jobs_table()
    finally:
        store.close()
    assert vacuum_count(conn) == vacuums


def test_a_role_that_may_not_vacuum_turns_the_duty_off_with_one_warning(
    maintainless_url: str, conn: psycopg.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    churn(conn, 3000)
    vacuums = vacuum_count(conn)
    store = PostgresStore(maintainless_url, pool_size=1)
    try:
        duty = TableVacuumer(store, interval=0.01)
        with caplog.at_level(logging.WARNING, logger="joobq_sql.runtime.maintenance"):
            assert duty.run_once() == 0
            assert duty.run_once() == 0
    finally:
        store.close()
    assert duty.enabled is False
    (warning,) = [r.getMessage() for r in caplog.records]
    assert "table_vacuumer is off" in warning and "joobq.jobs" in warning
    assert "self_vacuum = false" in warning
    assert vacuum_count(conn) == vacuums


class HotTableJob(Job):
    def perform(self) -> None:
        pass


def test_workers_vacuum_their_table_unless_self_vacuum_is_off(database_url: str) -> None:
    for self_vacuum, expected in ((True, [0.2]), (False, [])):
        app = JoobQ(database_url=database_url, self_vacuum=self_vacuum, self_vacuum_threshold=0.2)
        app.queue("q", workers=1, jobs=[HotTableJob])
        try:
            worker = Worker(app, list(app.queues.values()))  # built, not started
            duties = worker.maintainer.duties
            assert [d.dead_share for d in duties if isinstance(d, TableVacuumer)] == expected
        finally:
            app.close()


def test_the_duty_refuses_a_dead_share_outside_0_to_1(store: PostgresStore) -> None:
    for share in (0, -0.1, 1.5):
        with pytest.raises(ValueError, match=rf"dead_share must be > 0 and at most 1, got {share}"):
            TableVacuumer(store, dead_share=share)


# -- stats() at the cost of the queues -----------------------------------------------------------


def insert_jobs(conn: psycopg.Connection, count: int, queue: str, status: str, **sql: str) -> None:
    """`count` jobs of `queue` in `status`; `sql` gives other columns as SQL expressions of i."""
    columns = {"priority": "0", "run_at": "now() - interval '1 minute'", **sql}
    if status == "running":
        columns |= {"worker_id": "'w'", "lease_expires_at": "now() + interval '1 minute'"}
    if status == "dead":
        columns |= {"dead_expires_at": "now() + interval '1 day'"}
    if status == "completed":
        columns |= {"finished_at": "now()"}
    names = ", ".join(columns)
    values = ", ".join(columns.values())
    conn.execute(
        f"INSERT INTO joobq.jobs (jid, queue, job_type, status, {names}) "
        f"SELECT gen_random_uuid(), %s, 'X', %s, {values} FROM generate_series(1, %s) AS i",
        (queue, status, count),
    )


def counted_by_scanning(conn: psycopg.Connection) -> dict[str, tuple[int, ...]]:
    """What each queue holds, counted by reading every row (what stats() did before)."""
    rows = conn.execute(
        """SELECT queue,
                  count(*) FILTER (WHERE status IN ('enqueued', 'scheduled') AND run_at <= now()),
                  count(*) FILTER (WHERE status IN ('enqueued', 'scheduled') AND run_at > now()),
                  count(*) FILTER (WHERE status = 'running'),
                  count(*) FILTER (WHERE status = 'retrying'),
                  count(*) FILTER (WHERE status = 'dead'),
                  count(*) FILTER (WHERE status = 'completed')
           FROM joobq.jobs GROUP BY queue"""
    ).fetchall()
    return {row[0]: tuple(row[1:]) for row in rows}


def held(store: PostgresStore) -> dict[str, tuple[int, ...]]:
    return {
        q: (s.waiting, s.due_later, s.running, s.retrying, s.dead, s.completed)
        for q, s in store.queue_stats().items()
    }


def test_stats_count_every_state_of_every_queue_and_priority_exactly(
    conn: psycopg.Connection, store: PostgresStore
) -> None:
    for queue in ("a", "b", "c\x7f'; --"):
        insert_jobs(conn, 30, queue, "enqueued", priority="i %% 3 - 1")
        insert_jobs(conn, 7, queue, "scheduled", run_at="now() + i * interval '1 minute'")
        insert_jobs(conn, 5, queue, "scheduled", run_at="now() - i * interval '1 minute'")
        insert_jobs(conn, 4, queue, "retrying", priority="5", run_at="now() - interval '1 s'")
        insert_jobs(conn, 3, queue, "retrying", priority="-7", run_at="now() + interval '1 h'")
    insert_jobs(conn, 6, "b", "running")
    insert_jobs(conn, 2, "d", "dead")
    insert_jobs(conn, 9, "e", "completed")

    stats = store.queue_stats()

    assert held(store) == counted_by_scanning(conn)
    assert not any(s.estimated for s in stats.values())
    # the oldest waiting job of "a" is the scheduled one due 5 minutes ago
    assert 300 <= (stats["a"].oldest_waiting_age or 0) < 360
    assert stats["d"].oldest_waiting_age is None


def test_a_backlog_past_the_exact_limit_is_estimated_from_the_live_row_count(
    conn: psycopg.Connection, store: PostgresStore
) -> None:
    from joobq_sql.store.postgres.queue_stats import STATS_EXACT_LIMIT

    backlog = STATS_EXACT_LIMIT + 4321
    insert_jobs(conn, backlog, "big", "enqueued")
    insert_jobs(conn, 3, "big", "running")
    insert_jobs(conn, 12, "small", "enqueued")
    conn.execute("SELECT pg_stat_force_next_flush()")
    conn.execute("SELECT 1")  # the flush happens when the session is next idle

    stats = store.queue_stats()

    assert (stats["big"].waiting, stats["big"].running, stats["big"].estimated) == (
        backlog,
        3,
        True,
    )
    assert (stats["small"].waiting, stats["small"].estimated) == (12, False)
    conn.execute("DELETE FROM joobq.jobs WHERE queue = 'big' AND status = 'enqueued'")
    drained = store.queue_stats()["big"]  # below the limit: counted, not estimated
    assert (drained.waiting, drained.running, drained.estimated) == (0, 3, False)


def test_the_steady_depth_ageing_workload_runs_and_reports_sizes_and_vacuums(
    database_url: str,
) -> None:
    """A smoke run of bench/ageing.py's steady-depth workload (tiny: no speed is asserted)."""
    from bench.ageing import run_steady
    from bench.drain import DrainOptions

    options = DrainOptions(threads=4, batch=100, prefetch=100, timeout=60)
    result = run_steady(database_url, 1500, options, windows=3, depth=300, sample_every=0.2)

    assert result["jobs"] == 1500 and len(result["windows"]) == 3
    assert result["sizes"]["start"]["live_tuples"] == 300
    assert result["self_vacuum"] is True and result["vacuums"] >= 0
    assert result["largest_to_start_size"] >= 1.0


def test_a_role_granted_maintain_vacuums_without_owning_the_table(
    maintainless_url: str, conn: psycopg.Connection
) -> None:
    """PostgreSQL 17 and later: MAINTAIN alone (docs/security.md) lets a worker role VACUUM."""
    if conn.info.server_version < 170000:
        pytest.skip("MAINTAIN is a privilege from PostgreSQL 17 on")
    role = make_url(maintainless_url).username
    conn.execute(f'GRANT MAINTAIN ON joobq.jobs TO "{role}"')
    churn(conn, 3000)
    vacuums = vacuum_count(conn)
    store = PostgresStore(maintainless_url, pool_size=1)
    try:
        assert health(store).may_vacuum is True
        assert TableVacuumer(store, interval=0.01).run_once() == 3000
    finally:
        store.close()
    assert vacuum_count(conn) == vacuums + 1
