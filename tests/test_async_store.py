"""The asyncio API: AsyncPostgresStore, transactional enqueue through AsyncSession and
AsyncConnection, the Job's *_async methods, and sync and async calls on one database."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from uuid import uuid4

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.orm import Session

from joobq_sql import (
    AsyncPostgresStore,
    AsyncStoreAdapter,
    DuplicateJobError,
    Job,
    JobStatus,
    JoobQ,
    MemoryStore,
    NewJob,
    PostgresStore,
    SchemaNotMigratedError,
)
from tests.conftest import libpq_url


class AsyncMail(Job):
    queue = "async-mail"
    to: str

    async def perform(self) -> None:
        pass


class AsyncReport(Job):
    queue = "async-mail"
    name: str

    def unique_key(self) -> str:
        return self.name

    on_duplicate = "raise"

    async def perform(self) -> None:
        pass


def new_job(n: int = 0, **overrides: Any) -> NewJob:
    values: dict[str, Any] = {
        "jid": uuid4(),
        "queue": "async-mail",
        "job_type": "AsyncMail",
        "args": {"to": f"{n}@example.com"},
    }
    values.update(overrides)
    return NewJob(**values)


@pytest.fixture
def async_store(database_url: str) -> Iterator[AsyncPostgresStore]:
    store = AsyncPostgresStore(database_url)
    yield store
    store.close()


@pytest.fixture
def listener(database_url: str) -> Iterator[psycopg.Connection[Any]]:
    """A connection LISTENing on the jobs channel of the default schema."""
    with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
        conn.execute("LISTEN joobq_jobs")
        yield conn


def next_notification(conn: psycopg.Connection[Any], timeout: float = 10.0) -> str:
    for notify in conn.notifies(timeout=timeout, stop_after=1):
        return notify.payload
    raise AssertionError(f"no notification within {timeout}s")


# -- transactional enqueue -----------------------------------------------------------------


def test_a_job_enqueued_in_an_async_session_exists_only_if_the_session_commits(
    database_url: str, async_store: AsyncPostgresStore, listener: psycopg.Connection[Any]
) -> None:
    engine = create_async_engine(database_url)

    async def scenario() -> tuple[Any, Any]:
        async with AsyncSession(engine) as session:
            dropped = (
                await async_store.enqueue_jobs([new_job(1, queue="dropped")], connection=session)
            )[0]
            assert await async_store.get_job(dropped) is None  # not visible outside yet
            await session.rollback()
        async with AsyncSession(engine) as session:
            kept = (await async_store.enqueue_jobs([new_job(2)], connection=session))[0]
            await session.commit()
        await engine.dispose()
        await async_store.aclose()
        return dropped, kept

    dropped, kept = asyncio.run(scenario())
    sync = PostgresStore(database_url)
    assert sync.get_job(dropped) is None
    assert sync.get_job(kept).status is JobStatus.ENQUEUED
    # The rolled-back transaction's NOTIFY was dropped: the first one is the committed queue's.
    assert next_notification(listener) == "async-mail"
    sync.close()


def test_a_job_enqueued_on_an_async_connection_commits_with_it(
    database_url: str, async_store: AsyncPostgresStore
) -> None:
    engine = create_async_engine(database_url)

    async def scenario() -> list[Any]:
        async with engine.connect() as conn:  # "commit as you go": nothing begun yet
            committed = await async_store.enqueue_jobs([new_job(1)], connection=conn)
            await conn.commit()
        async with engine.begin() as conn:
            await conn.execute(text("SELECT 1"))
            rolled_back = await async_store.enqueue_jobs([new_job(2)], connection=conn)
            await conn.rollback()
        await engine.dispose()
        return committed + rolled_back

    committed, rolled_back = asyncio.run(scenario())
    sync = PostgresStore(database_url)
    assert sync.get_job(committed) is not None
    assert sync.get_job(rolled_back) is None
    sync.close()


def test_a_refused_unique_job_leaves_the_callers_own_work_in_the_transaction(
    database_url: str, make_app: Any
) -> None:
    app: JoobQ = make_app()
    app.queue("async-mail", jobs=[AsyncMail, AsyncReport])
    engine = create_async_engine(database_url)

    async def scenario() -> None:
        await AsyncReport.enqueue_async(name="weekly")
        async with AsyncSession(engine) as session:
            await session.execute(text("CREATE TABLE signups (email text)"))
            await session.execute(text("INSERT INTO signups VALUES ('a@example.com')"))
            with pytest.raises(DuplicateJobError, match="weekly"):
                await AsyncReport.enqueue_async(name="weekly", connection=session)
            await AsyncMail.enqueue_async(to="a@example.com", connection=session)
            await session.commit()
        await engine.dispose()
        await app.aclose()

    asyncio.run(scenario())
    assert app.store.count_jobs("async-mail", JobStatus.ENQUEUED) == 2
    with psycopg.connect(libpq_url(database_url)) as conn:
        assert conn.execute("SELECT count(*) FROM signups").fetchone() == (1,)


def test_a_sync_session_is_refused_with_the_accepted_types_named(
    database_url: str, async_store: AsyncPostgresStore
) -> None:
    from sqlalchemy import create_engine

    engine = create_engine(database_url)
    with Session(engine) as session, pytest.raises(TypeError, match="AsyncSession"):
        asyncio.run(async_store.enqueue_jobs([new_job()], connection=session))
    engine.dispose()


# -- the Job's async methods -----------------------------------------------------------------


def test_the_async_enqueue_methods_store_what_the_sync_ones_do(make_app: Any) -> None:
    app: JoobQ = make_app()
    app.queue("async-mail", jobs=[AsyncMail])

    async def scenario() -> dict[str, Any]:
        at = await app.async_store.now() + timedelta(hours=1)
        jids = {
            "enqueue": await AsyncMail.enqueue_async(to="a@example.com"),
            "instance": await AsyncMail(to="b@example.com").enqueue_async(),
            "delay": await AsyncMail.delay_async(60, to="c@example.com"),
            "enqueue_at": await AsyncMail.enqueue_at_async(at, to="d@example.com"),
            "priority": await AsyncMail.enqueue_async(to="e@example.com", priority=5),
        }
        batch = await AsyncMail.batch_enqueue_async([AsyncMail(to=f"{i}@b.com") for i in range(3)])
        await app.aclose()
        return {**jids, "batch": batch, "at": at}

    got = asyncio.run(scenario())
    store = app.store
    assert store.get_job(got["enqueue"]).status is JobStatus.ENQUEUED
    assert store.get_job(got["instance"]).args == {"to": "b@example.com"}
    assert store.get_job(got["delay"]).status is JobStatus.SCHEDULED
    assert store.get_job(got["enqueue_at"]).run_at == got["at"]
    assert store.get_job(got["priority"]).priority == 5
    assert [store.get_job(j).args["to"] for j in got["batch"]] == [f"{i}@b.com" for i in range(3)]


def test_an_async_batch_with_a_duplicate_jid_stores_nothing(make_app: Any) -> None:
    app: JoobQ = make_app()
    app.queue("async-mail", jobs=[AsyncMail])
    first, second = AsyncMail(to="a@example.com"), AsyncMail(to="b@example.com")
    second.jid = first.jid

    async def scenario() -> None:
        with pytest.raises(DuplicateJobError):
            await AsyncMail.batch_enqueue_async([AsyncMail(to="c@example.com"), first, second])
        await app.aclose()

    asyncio.run(scenario())
    assert app.store.queue_size("async-mail") == 0


def test_sync_and_async_calls_on_one_database_see_the_same_jobs(make_app: Any) -> None:
    app: JoobQ = make_app()
    app.queue("async-mail", jobs=[AsyncMail])
    from_sync = AsyncMail.enqueue(to="sync@example.com")

    async def scenario() -> Any:
        claimed = await app.async_store.claim_jobs("async-mail", "async-worker", 10)
        assert [r.jid for r in claimed] == [from_sync]
        from_async = await AsyncMail.enqueue_async(to="async@example.com")
        assert await app.async_store.queue_size("async-mail") == 1
        await app.async_store.complete_jobs([claimed[0].completion])
        await app.aclose()
        return from_async

    from_async = asyncio.run(scenario())
    [record] = app.store.claim_jobs("async-mail", "sync-worker", 10)
    assert record.jid == from_async
    assert app.store.queue_stats()["async-mail"].totals["completed"] == 1


def test_a_memory_app_gets_an_async_store_over_the_same_jobs(make_app: Any) -> None:
    app: JoobQ = make_app(store=MemoryStore())
    app.queue("async-mail", jobs=[AsyncMail])
    assert isinstance(app.async_store, AsyncStoreAdapter)
    jid = asyncio.run(AsyncMail.enqueue_async(to="a@example.com"))
    assert app.store.get_job(jid).status is JobStatus.ENQUEUED


# -- the store itself ----------------------------------------------------------------------


def test_one_store_serves_successive_event_loops(async_store: AsyncPostgresStore) -> None:
    for n in range(3):  # each asyncio.run is a new loop; pooled connections are per loop
        asyncio.run(async_store.enqueue_jobs([new_job(n)]))
    assert asyncio.run(async_store.queue_size("async-mail")) == 3


def test_concurrent_claims_on_one_loop_never_share_a_job(async_store: AsyncPostgresStore) -> None:
    async def scenario() -> list[Any]:
        await async_store.enqueue_jobs([new_job(i) for i in range(300)])

        async def claimer(name: str) -> list[Any]:
            got = []
            while batch := await async_store.claim_jobs("async-mail", name, 7):
                got.extend(r.jid for r in batch)
                await async_store.complete_jobs([r.completion for r in batch])
            return got

        results = await asyncio.gather(*(claimer(f"w{i}") for i in range(12)))
        await async_store.aclose()
        return [jid for batch in results for jid in batch]

    claimed = asyncio.run(scenario())
    assert len(claimed) == 300 and len(set(claimed)) == 300


def test_completed_rows_are_kept_with_retention(database_url: str) -> None:
    store = AsyncPostgresStore(database_url, keep_completed=3600)

    async def scenario() -> Any:
        [jid] = await store.enqueue_jobs([new_job()])
        [claimed] = await store.claim_jobs("async-mail", "w", 1)
        assert await store.complete_jobs([claimed.completion]) == [jid]
        record = await store.get_job(jid)
        await store.aclose()
        return record

    record = asyncio.run(scenario())
    assert record.status is JobStatus.COMPLETED and record.finished_at is not None


def test_an_unmigrated_database_is_named_as_such(fresh_database_url: str) -> None:
    store = AsyncPostgresStore(fresh_database_url)
    with pytest.raises(SchemaNotMigratedError, match="joobq-sql migrate"):
        asyncio.run(store.enqueue_jobs([new_job()]))
    store.close()


def test_a_store_on_your_own_async_engine_uses_that_engine(database_url: str) -> None:
    engine = create_async_engine(database_url, pool_size=1)
    store = AsyncPostgresStore(engine, schema="joobq")

    async def scenario() -> int:
        await store.enqueue_jobs([new_job()])
        assert store.engine is engine
        size = await store.queue_size("async-mail")
        await engine.dispose()
        return size

    assert asyncio.run(scenario()) == 1


@pytest.mark.parametrize(
    "url, message",
    [("mysql://x@localhost/db", "not supported"), ("::not a url::", "not a valid URL")],
)
def test_bad_urls_are_refused_at_construction(url: str, message: str) -> None:
    from joobq_sql import ConfigurationError

    with pytest.raises(ConfigurationError, match=message):
        AsyncPostgresStore(url)
