"""How PostgreSQL plans the store's statements, on the main test server (18) and on 15.

- Statements that look jobs up by a list of jids are never prepared: PostgreSQL's generic plan
  for them cannot see the array's length and reads the whole jobs table.
- The statements that run all the time read an index, and what they read does not grow with
  the jobs they do not touch (jobs not yet due, jobs not expired). PostgreSQL 15 has no skip
  scan, so a statement that is only cheap on 18 shows here.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from sqlalchemy import text

from joobq_sql import NewJob, PostgresStore
from joobq_sql.store.postgres.queries import Queries
from joobq_sql.store.postgres.store import _PLANNED_PER_RUN, claim_statement
from tests.conftest import libpq_url

QUERIES = Queries("joobq")


@pytest.fixture(params=["postgres", "postgres15"])
def server_database_url(request: pytest.FixtureRequest) -> str:
    """A migrated, empty database on the main test server and on PostgreSQL 15."""
    fixture = "database_url" if request.param == "postgres" else "database_url_pg15"
    url: str = request.getfixturevalue(fixture)
    return url


@pytest.fixture
def conn(server_database_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(libpq_url(server_database_url), autocommit=True) as connection:
        yield connection


def add_jobs(
    conn: psycopg.Connection,
    count: int,
    *,
    status: str = "enqueued",
    run_at: str = "now() - interval '1 minute'",
    expires_at: str = "now() + interval '3 days'",
    priorities: int = 1,
) -> None:
    """Insert `count` jobs of queue 'q' at once (run_at and expires_at are SQL expressions; the
    i-th job gets priority i % priorities), then refresh the planner's statistics."""
    conn.execute(
        "INSERT INTO joobq.jobs (jid, queue, job_type, status, priority, run_at, expires_at) "
        f"SELECT gen_random_uuid(), 'q', 'X', %s, i %% %s, {run_at} + i * interval '1 ms', "
        f"{expires_at} FROM generate_series(1, %s) AS i",
        (status, priorities, count),
    )
    conn.execute("ANALYZE joobq.jobs")


def executed_plan(conn: psycopg.Connection, statement: str, params: dict[str, Any]) -> Any:
    """The plan of one run of a store statement, with its buffer counts; the run is undone."""
    with conn.transaction(force_rollback=True):
        row = conn.execute(
            "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + QUERIES[statement], params
        ).fetchone()
    assert row is not None
    document = row[0] if not isinstance(row[0], str) else json.loads(row[0])
    return document[0]["Plan"]


def plan_nodes(node: Any) -> Iterator[Any]:
    yield node
    for child in node.get("Plans", ()):
        yield from plan_nodes(child)


def buffers_read(plan: Any) -> int:
    """The pages the statement's execution touched (found in shared buffers or read)."""
    return int(plan["Shared Hit Blocks"]) + int(plan["Shared Read Blocks"])


def claim_params(limit: int = 10) -> dict[str, Any]:
    return {"queue": "q", "worker_id": "w", "limit": limit, "lease_s": 30.0, "started": None}


def sweep_params() -> dict[str, Any]:
    return {"limit": 1000, "dead_ttl_s": 3600.0, "max_errors": 20, "shard": 0}


def test_every_statement_planned_per_run_exists():
    for name in _PLANNED_PER_RUN:
        assert QUERIES[name]


def test_completions_and_renewals_stay_unprepared_after_many_runs(server_database_url: str):
    # one connection: its prepared statements
    store = PostgresStore(server_database_url, pool_size=1)
    try:
        for _ in range(8):  # psycopg prepares a statement on its fifth run
            jids = [uuid.uuid4() for _ in range(3)]
            store.enqueue_jobs([NewJob(jid=j, queue="q", job_type="X", args={}) for j in jids])
            claimed = store.claim_jobs("q", "w", 3)
            assert store.renew_leases("w", jids) == set(jids)
            assert sorted(store.complete_jobs([r.completion for r in claimed])) == sorted(jids)
        with store.engine.connect() as connection:
            prepared = [
                row[0]
                for row in connection.execute(text("SELECT statement FROM pg_prepared_statements"))
            ]
    finally:
        store.close()
    assert any("FOR UPDATE SKIP LOCKED" in s for s in prepared)  # the claim is prepared
    assert not any("DELETE FROM joobq.jobs" in s for s in prepared)
    assert not any("SET lease_expires_at" in s for s in prepared)


def test_the_expiry_sweep_reads_an_index_not_the_whole_table(conn: psycopg.Connection) -> None:
    add_jobs(conn, 20_000, status="scheduled", run_at="now() + interval '1 hour'")
    add_jobs(conn, 5, expires_at="now() - interval '1 minute'")

    plan = executed_plan(conn, "expire_waiting_jobs", sweep_params())

    scans = {
        (n["Node Type"], n.get("Index Name")) for n in plan_nodes(plan) if "Scan" in n["Node Type"]
    }
    assert not any(node == "Seq Scan" for node, _ in scans), scans
    assert any(index == "jobs_expiry_idx" for _, index in scans), scans


def test_a_claim_reads_no_more_with_50k_jobs_not_yet_due_than_with_1k(
    conn: psycopg.Connection,
) -> None:
    add_jobs(conn, 3)  # due
    add_jobs(conn, 1_000, status="scheduled", run_at="now() + interval '1 hour'")
    claim = claim_statement(conn.info.server_version)  # the one the store runs on this server
    few_later = buffers_read(executed_plan(conn, claim, claim_params()))
    add_jobs(conn, 49_000, status="scheduled", run_at="now() + interval '2 hours'")

    plan = executed_plan(conn, claim, claim_params())

    assert plan["Actual Rows"] == 3
    # a deeper index may cost a page per descent; a scan through the 49,000 costs hundreds
    assert buffers_read(plan) <= few_later + 10, (few_later, buffers_read(plan))


def test_a_claim_of_1000_reads_the_rows_it_claims_not_the_whole_queue(
    conn: psycopg.Connection,
) -> None:
    """The claim's UPDATE finds its locked rows by their addresses: joined to the picked rows
    by a hash of the table, it read every row of the queue on each claim."""
    add_jobs(conn, 30_000, priorities=2)
    claim = claim_statement(conn.info.server_version)  # the one the store runs on this server

    plan = executed_plan(conn, claim, claim_params(limit=1000))

    assert plan["Actual Rows"] == 1000
    scans = {n["Node Type"] for n in plan_nodes(plan) if n.get("Relation Name") == "jobs"}
    assert "Seq Scan" not in scans, scans
    # the picked rows, found by the index scan, then by address, then updated (3 x 1000), and
    # on 15 a few probes for the priorities; the whole queue is 30,000
    assert rows_read(plan) <= 3_100, rows_read(plan)


def test_a_claim_locks_only_the_jobs_it_claims(
    conn: psycopg.Connection, server_database_url: str
) -> None:
    """A row locked but not claimed would be hidden from every other claimer until commit."""
    add_jobs(conn, 60, priorities=3)  # 20 jobs of each priority
    claim = QUERIES[claim_statement(conn.info.server_version)]

    with psycopg.connect(libpq_url(server_database_url)) as claimer:
        claimed = claimer.execute(claim, claim_params(limit=25)).fetchall()
        # the claim's transaction is still open: its locks are held
        unlocked = conn.execute("SELECT jid FROM joobq.jobs FOR UPDATE SKIP LOCKED").fetchall()
        claimer.rollback()

    assert len(claimed) == 25
    assert len(unlocked) == 60 - 25


def test_the_claim_statement_follows_the_server_version() -> None:
    assert claim_statement(150004) == claim_statement(170006) == "claim_jobs_by_priority"
    assert claim_statement(180000) == claim_statement(190001) == "claim_jobs"


def test_the_store_claims_with_the_statement_for_its_server(server_database_url: str) -> None:
    store = PostgresStore(server_database_url, pool_size=1)  # one connection: its statements
    try:
        for _ in range(6):  # psycopg prepares a statement on its fifth run
            store.claim_jobs("q", "w", 1)
        with store.engine.connect() as connection:
            version = connection.exec_driver_sql("SHOW server_version_num").scalar_one()
            prepared = [
                row[0]
                for row in connection.execute(text("SELECT statement FROM pg_prepared_statements"))
            ]
    finally:
        store.close()
    expected = QUERIES[claim_statement(int(version))]
    body = expected[expected.index("WITH") :][:40]  # past the comments, before any parameter
    assert any(body in statement for statement in prepared), (body, prepared)


def rows_read(plan: Any) -> float:
    """Rows the statement's scans of the jobs table visited (returned or filtered out)."""
    return sum(
        (float(n.get("Actual Rows", 0)) + float(n.get("Rows Removed by Filter", 0)))
        * float(n.get("Actual Loops", 1))
        for n in plan_nodes(plan)
        if n.get("Relation Name") == "jobs"
    )


def test_stats_reads_as_many_rows_with_40k_waiting_jobs_as_with_6k(
    conn: psycopg.Connection,
) -> None:
    """stats() is polled by the dashboard, `stats --watch` and /metrics: its count reads at most
    `cap` rows per part of a queue (STATS_EXACT_LIMIT in the store; 500 here, so that a small
    table shows it), never the whole table."""
    params = {"cap": 500}
    an_hour_ago = "now() - interval '1 hour'"
    add_jobs(conn, 6_000, priorities=2, run_at=an_hour_ago)  # two parts due
    add_jobs(conn, 1_000, status="scheduled", run_at="now() + interval '1 hour'")  # one later
    conn.execute(
        "INSERT INTO joobq.jobs (jid, queue, job_type, status, dead_expires_at) "
        "SELECT gen_random_uuid(), 'q', 'X', 'dead', now() + interval '1 day' "
        "FROM generate_series(1, 1000)"
    )  # and one part dead
    fewer = rows_read(executed_plan(conn, "queue_counts", params))
    add_jobs(conn, 34_000, priorities=2, run_at=an_hour_ago)

    plan = executed_plan(conn, "queue_counts", params)

    scans = [n["Node Type"] for n in plan_nodes(plan) if "Scan" in n["Node Type"]]
    assert "Seq Scan" not in scans, scans
    assert rows_read(plan) <= 4 * 500 + 20, rows_read(plan)  # four parts, a few probes
    assert rows_read(plan) <= fewer + 5, (fewer, rows_read(plan))
