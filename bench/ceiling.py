"""ceiling: the drain's claim and complete SQL in a tight loop, with no job machinery.

Two loops over a table filled with the drain's N jobs, each claiming the drain's batch size
and completing what it claimed in one fenced statement, one transaction per statement (as the
store runs them), at default durability:

- `sql`: the store's own statements (claim_jobs.sql, complete_jobs_delete.sql) sent through
  psycopg as prepared statements, rows as tuples; one connection per drain process, each in a
  thread of its own. This is the ceiling every throughput is a fraction of.
- `store`: the same loop through PostgresStore.claim_jobs and complete_jobs (one thread),
  which adds building JobRecords and SQLAlchemy's connection handling.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import psycopg

from bench._common import QUEUE, SCHEMA, analyze, fill, libpq, per_second, reset
from joobq_sql import PostgresStore
from joobq_sql.store.base import counter_shard
from joobq_sql.store.postgres.queries import Queries
from joobq_sql.store.postgres.schema import COUNTER_SHARDS
from joobq_sql.store.postgres.store import claim_statement

LEASE_S = 30.0


def _filled(url: str, jobs: int) -> None:
    reset(url)
    store = PostgresStore(url, pool_size=1)
    try:
        fill(store, jobs)
    finally:
        store.close()
    analyze(url)


def sql_loop(url: str, batch: int, worker_id: str) -> int:
    """Claim and complete until the queue is empty; the number of jobs done."""
    queries = Queries(SCHEMA)
    complete = queries["complete_jobs_delete"]
    shard = counter_shard(worker_id, COUNTER_SHARDS)
    claim_params = {
        "queue": QUEUE,
        "worker_id": worker_id,
        "limit": batch,
        "lease_s": LEASE_S,
        "started": None,  # as the runtime claims: its lease renewals report the run state
    }
    done = 0
    with psycopg.connect(libpq(url), autocommit=True) as conn:
        # The statement the store runs on this server (PostgreSQL 15-17 probe each priority).
        claim = queries[claim_statement(conn.info.server_version)]
        cur = conn.cursor()
        columns: tuple[int, int, int] | None = None
        while True:
            cur.execute(claim, claim_params, prepare=True)
            rows = cur.fetchall()
            if not rows:
                return done
            if columns is None:
                names = [c.name for c in cur.description or ()]
                columns = (names.index("jid"), names.index("attempt"), names.index("worker_id"))
            j, a, w = columns
            params = {
                "jid": [r[j] for r in rows],
                "attempt": [r[a] for r in rows],
                "worker_id": [r[w] for r in rows],
                "shard": shard,
            }
            cur.execute(complete, params, prepare=True)
            done += len(cur.fetchall())


def store_loop(store: PostgresStore, batch: int, worker_id: str) -> int:
    done = 0
    while True:
        claimed = store.claim_jobs(QUEUE, worker_id, batch)
        if not claimed:
            return done
        done += len(store.complete_jobs([r.completion for r in claimed]))


def run(url: str, jobs: int, batch: int, connections: int = 1) -> dict[str, Any]:
    # warm-up: plans prepared and caches warm before either timed loop
    _filled(url, min(jobs, batch * 3))
    sql_loop(url, batch, "ceiling-warmup")

    _filled(url, jobs)
    counts = [0] * connections

    def loop(index: int) -> None:
        counts[index] = sql_loop(url, batch, f"ceiling-{index}")

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(connections)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    sql_seconds = time.perf_counter() - started
    if sum(counts) != jobs:
        raise RuntimeError(f"the SQL loop completed {sum(counts)} of {jobs} jobs")

    _filled(url, jobs)
    store = PostgresStore(url, pool_size=1)
    try:
        store.now()  # connect before the clock
        started = time.perf_counter()
        done = store_loop(store, batch, "ceiling-store")
        store_seconds = time.perf_counter() - started
    finally:
        store.close()
    if done != jobs:
        raise RuntimeError(f"the store loop completed {done} of {jobs} jobs")
    return {
        "jobs": jobs,
        "batch": batch,
        "connections": connections,
        "sql": {"seconds": round(sql_seconds, 3), "jobs_per_s": per_second(jobs, sql_seconds)},
        "store": {
            "seconds": round(store_seconds, 3),
            "jobs_per_s": per_second(jobs, store_seconds),
        },
        "jobs_per_s": per_second(jobs, sql_seconds),
    }
