"""Claim + complete throughput of PostgresStore, for batches of 1, 10 and 100.

A benchmark, not a test: it prints jobs/s, it asserts nothing. Each batch size runs against a
jobs table holding --rows waiting jobs (100k by default), so the claim index is realistically
deep. One thread claims a batch and completes it in one fenced statement, over and over.

    python bench/store_bench.py                   # the embedded PostgreSQL, database joobq_bench
    python bench/store_bench.py --url postgresql://user@host/db --rows 100000 --jobs 20000
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

from joobq_sql import NewJob, PostgresStore
from joobq_sql.migrate import upgrade

BENCH_DATABASE = "joobq_bench"


def bench_url(url: str | None) -> str:
    if url:
        return url
    from joobq_sql.embedded import server_url

    admin = make_url(server_url("postgres")).set(drivername="postgresql")
    with psycopg.connect(admin.render_as_string(hide_password=False), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{BENCH_DATABASE}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{BENCH_DATABASE}"')
    return server_url(BENCH_DATABASE)


def fill(store: PostgresStore, rows: int) -> None:
    jobs = [
        NewJob(jid=uuid.uuid4(), queue="bench", job_type="BenchJob", args={"i": i})
        for i in range(rows)
    ]
    store.enqueue_jobs(jobs, batch_size=5000)


def reset(url: str) -> None:
    libpq = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(libpq, autocommit=True) as conn:
        conn.execute("TRUNCATE joobq.jobs, joobq.queue_counters")
        conn.execute("VACUUM ANALYZE joobq.jobs")


def claim_complete(store: PostgresStore, batch: int, jobs: int) -> float:
    """Seconds to claim and complete `jobs` jobs, `batch` at a time."""
    done = 0
    started = time.perf_counter()
    while done < jobs:
        claimed = store.claim_jobs("bench", "bench-worker", batch)
        if not claimed:
            raise RuntimeError("the table ran out of jobs; raise --rows")
        store.complete_jobs([r.completion for r in claimed])
        done += len(claimed)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="database URL (default: the embedded PostgreSQL)")
    parser.add_argument("--rows", type=int, default=100_000, help="waiting jobs in the table")
    parser.add_argument("--jobs", type=int, default=10_000, help="jobs to process per batch size")
    parser.add_argument("--batches", default="1,10,100", help="comma-separated batch sizes")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args(argv)

    url = bench_url(args.url)
    upgrade(url)
    store = PostgresStore(url, pool_size=2)
    results = []
    try:
        for batch in [int(b) for b in args.batches.split(",")]:
            reset(url)
            fill(store, args.rows)
            jobs = min(args.jobs, args.rows) if batch > 1 else min(args.jobs // 4, args.rows)
            claim_complete(store, batch, min(200, jobs))  # warm the pool and prepared plans
            seconds = claim_complete(store, batch, jobs)
            results.append(
                {"batch": batch, "jobs": jobs, "seconds": seconds, "jobs_per_s": jobs / seconds}
            )
    finally:
        store.close()

    print(f"claim + complete on a {args.rows:,}-row jobs table, one thread")
    print(f"{'batch':>6} {'jobs':>8} {'seconds':>8} {'jobs/s':>10}")
    for r in results:
        print(f"{r['batch']:>6} {r['jobs']:>8} {r['seconds']:>8.2f} {r['jobs_per_s']:>10,.0f}")
    if args.json:
        args.json.write_text(json.dumps({"rows": args.rows, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
