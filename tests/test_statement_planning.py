"""Statements that look jobs up by a list of jids are never prepared: PostgreSQL's generic plan
for them cannot see the array's length and reads the whole jobs table."""

from __future__ import annotations

import uuid

from sqlalchemy import text

from joobq_sql import NewJob, PostgresStore
from joobq_sql.store.postgres.queries import Queries
from joobq_sql.store.postgres.store import _PLANNED_PER_RUN


def test_every_statement_planned_per_run_exists():
    queries = Queries("joobq")
    for name in _PLANNED_PER_RUN:
        assert queries[name]


def test_completions_and_renewals_stay_unprepared_after_many_runs(database_url: str):
    store = PostgresStore(database_url, pool_size=1)  # one connection: its prepared statements
    try:
        for _ in range(8):  # psycopg prepares a statement on its fifth run
            jids = [uuid.uuid4() for _ in range(3)]
            store.enqueue_jobs([NewJob(jid=j, queue="q", job_type="X", args={}) for j in jids])
            claimed = store.claim_jobs("q", "w", 3)
            assert store.renew_leases("w", jids) == set(jids)
            assert sorted(store.complete_jobs([r.completion for r in claimed])) == sorted(jids)
        with store.engine.connect() as conn:
            prepared = [
                row[0] for row in conn.execute(text("SELECT statement FROM pg_prepared_statements"))
            ]
    finally:
        store.close()
    assert any("FOR UPDATE SKIP LOCKED" in s for s in prepared)  # the claim is prepared
    assert not any("DELETE FROM joobq.jobs" in s for s in prepared)
    assert not any("SET lease_expires_at" in s for s in prepared)
