"""Enqueue, claim and complete jobs with PostgresStore: the smallest real use of joobq-sql.

With JOOBQ_DATABASE_URL (or DATABASE_URL) set it uses that database, which must be migrated
(`python -c "from joobq_sql.migrate import upgrade; upgrade('postgresql://...')"`). With
neither, it starts the embedded PostgreSQL, creates and migrates its `joobq` database.

    python examples/store_roundtrip.py
"""

from __future__ import annotations

import os

from joobq_sql import Job, PostgresStore


class Greet(Job):
    queue = "greetings"
    name: str

    def perform(self) -> None:
        print(f"  hello, {self.name}")


def database_url() -> str:
    url = os.environ.get("JOOBQ_DATABASE_URL") or os.environ.get("DATABASE_URL")
    if url:
        return url
    from joobq_sql.embedded import data_directory, ensure_database

    url = ensure_database()
    print(f"using the embedded PostgreSQL (data in {data_directory()})")
    return url


def main() -> None:
    store = PostgresStore(database_url())
    try:
        store.clear_queue("greetings")
        store.enqueue_batch([Greet(name=name) for name in ("Ada", "Grace", "Barbara")], 100)
        urgent = store.enqueue(Greet(name="Edsger"))
        print(f"enqueued 4 jobs; {store.queue_size('greetings')} waiting (last jid {urgent})")

        claimed = store.claim_jobs("greetings", "example-worker", 10)
        runnable = store.screen_claimed(claimed)  # a row no Job class can run goes to dead
        for _record, job in runnable:
            job.perform()
        finished = store.complete_jobs([record.completion for record, _job in runnable])

        stats = store.queue_stats()["greetings"]
        print(
            f"completed {len(finished)} jobs; waiting={stats.waiting} running={stats.running} "
            f"completed so far={stats.totals['completed']}"
        )
    finally:
        store.close()


if __name__ == "__main__":
    main()
