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
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the bench package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import fill, reset, workload_database
from joobq_sql import PostgresStore

BENCH_DATABASE = "joobq_bench"


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

    url = workload_database(args.url, BENCH_DATABASE)
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
