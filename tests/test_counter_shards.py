"""Which queue_counters row a process's completions add to: processes on one host take
different rows, so that two workers draining one queue do not queue behind each other's row
locks (a hash of the whole worker id sent two processes to one row 1 run in 16)."""

from __future__ import annotations

import itertools
import zlib
from uuid import uuid4

import sqlalchemy as sa

from joobq_sql import NewJob, PostgresStore
from joobq_sql.runtime.worker import make_worker_id
from joobq_sql.store.postgres.schema import COUNTER_SHARDS


def colliding_ids(host: str, pid: int) -> tuple[str, str]:
    """Two worker ids of the runtime's shape (host:pid:suffix) for processes `pid` and
    `pid + 1` of one host whose whole ids hash to the same shard."""
    first = f"{host}:{pid}:00000000"
    want = zlib.crc32(first.encode()) % COUNTER_SHARDS
    for n in itertools.count():
        second = f"{host}:{pid + 1}:{n:08x}"
        if zlib.crc32(second.encode()) % COUNTER_SHARDS == want:
            return first, second
    raise AssertionError("unreachable")


def completed_shards(store: PostgresStore, queue: str) -> set[int]:
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT shard FROM joobq.queue_counters "
                "WHERE queue = :queue AND counter = 'completed' AND value > 0"
            ),
            {"queue": queue},
        )
        return {row[0] for row in rows}


def test_two_processes_of_one_host_complete_into_different_counter_rows(
    pg_store: PostgresStore,
) -> None:
    queue = f"shards-{uuid4().hex[:8]}"
    first, second = colliding_ids("bench-host", 4242)
    pg_store.enqueue_jobs([NewJob(jid=uuid4(), queue=queue, job_type="X", args={}) for _ in "ab"])

    for worker_id in (first, second):
        (claimed,) = pg_store.claim_jobs(queue, worker_id, 1)
        assert pg_store.complete_jobs([claimed.completion]) == [claimed.jid]

    assert len(completed_shards(pg_store, queue)) == 2


def test_processes_started_one_after_another_on_a_host_take_distinct_shards(
    pg_store: PostgresStore,
) -> None:
    """As many processes in a row as there are shards (pids in a row, as a supervisor or
    --processes starts them), each with a fresh random suffix: no two share a counter row."""
    host = make_worker_id().split(":")[0]
    queue = f"shards-{uuid4().hex[:8]}"
    ids = [f"{host}:{30000 + n}:{uuid4().hex[:8]}" for n in range(COUNTER_SHARDS)]
    pg_store.enqueue_jobs([NewJob(jid=uuid4(), queue=queue, job_type="X", args={}) for _ in ids])

    for worker_id in ids:
        (claimed,) = pg_store.claim_jobs(queue, worker_id, 1)
        pg_store.complete_jobs([claimed.completion])

    assert len(completed_shards(pg_store, queue)) == COUNTER_SHARDS
