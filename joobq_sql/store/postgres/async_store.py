"""The Store from asyncio: the AsyncStore interface, and AsyncPostgresStore on SQLAlchemy's
AsyncEngine with psycopg's async driver.

One implementation, two faces. AsyncPostgresStore does not restate any statement, parameter or
row decoding: it runs the sync PostgresStore's own methods in a greenlet, on a cursor whose I/O
is awaited on a ``psycopg.AsyncConnection`` from the AsyncEngine's pool. This is how SQLAlchemy's
asyncio extension runs its own sync core. The named statements of ``sql/``, the validation, the
unique-job savepoint, the NOTIFY and every error message are the sync store's, so the two
cannot drift apart; while a greenlet waits for PostgreSQL, the event loop runs other tasks.

The price is one contract inside this package: PostgresStore reaches the database only through
``self._db.cursor(connection)``, and uses what `_GreenCursor` offers of a psycopg cursor
(execute, fetchone, fetchall, description, rowcount, copy). The async store contract tests
fail loudly if it starts using more.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib.util
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, cast
from uuid import UUID

import psycopg
from psycopg.rows import dict_row
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy.util import concurrency

from ...errors import ConfigurationError
from ...status import JobStatus
from ..base import DEFAULT_BATCH_SIZE, DEFAULT_DEAD_LETTER_TTL, DEFAULT_LEASE, Store
from ..presence import DEFAULT_HEARTBEAT_INTERVAL
from ..records import Completion, Failure, JobRecord, NewJob, QueueStats, WorkerInfo
from ..unrunnable import HandBack
from ._connections import (
    Connections,
    _translated_errors,
    check_idle_connections,
    checked_out,
    url_from_environment,
)
from .schema import DEFAULT_SCHEMA
from .store import PostgresStore

if TYPE_CHECKING:
    from ...job import Job

P = ParamSpec("P")
T = TypeVar("T")

# SQLAlchemy 2.1 renamed await_only to await_; 2.0 has only the old name.
_await: Callable[[Any], Any] = getattr(concurrency, "await_", None) or concurrency.await_only


class AsyncStore(ABC):
    """The Store's primitives, awaitable. Each method has exactly the semantics of the `Store`
    method of the same name (see its docstring there); only the waiting is asynchronous.

    Implementations: `AsyncPostgresStore` (non-blocking, on an AsyncEngine) and
    `AsyncStoreAdapter` (any sync Store, e.g. MemoryStore in unit tests).
    """

    @property
    @abstractmethod
    def _store(self) -> Store:
        """The sync implementation whose methods `_call` runs."""

    @abstractmethod
    async def _call(self, method: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Run `method` (a method of `_store`) without blocking the event loop."""

    async def _transaction(self, connection: Any) -> Any:
        """The caller's transaction in the form `_store` takes it."""
        return connection

    @property
    def lease_seconds(self) -> float:
        return self._store.lease_seconds

    @property
    def dead_letter_ttl_seconds(self) -> float:
        return self._store.dead_letter_ttl_seconds

    async def aclose(self) -> None:  # noqa: B027 - optional for stores that hold no resources
        """Release the connections this store holds on the running event loop."""

    def close(self) -> None:  # noqa: B027 - optional for stores that hold no resources
        """Release every connection, from outside the event loops. Not used afterwards."""

    # -- enqueueing --------------------------------------------------------------------------

    async def enqueue_jobs(
        self,
        jobs: Sequence[NewJob],
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        connection: Any = None,
    ) -> list[UUID]:
        """Insert `jobs`, all in one transaction; with `connection` (your AsyncConnection or
        AsyncSession) in your transaction: they exist if and only if it commits."""
        joined = None if connection is None else await self._transaction(connection)
        return await self._call(
            self._store.enqueue_jobs, jobs, batch_size=batch_size, connection=joined
        )

    async def enqueue(self, job: Job, *, connection: Any = None) -> str:
        """Insert `job` (status enqueued, runnable now) and return its jid."""
        return str((await self.enqueue_jobs([NewJob.from_job(job)], connection=connection))[0])

    async def enqueue_batch(
        self, jobs: Sequence[Job], batch_size: int = DEFAULT_BATCH_SIZE, *, connection: Any = None
    ) -> None:
        """Insert `jobs` in chunks of `batch_size`, all in one transaction (all or none)."""
        rows = [NewJob.from_job(job) for job in jobs]
        await self.enqueue_jobs(rows, batch_size=batch_size, connection=connection)

    async def enqueue_tick(self, schedule: str, tick: datetime, job: NewJob) -> bool:
        return await self._call(self._store.enqueue_tick, schedule, tick, job)

    async def last_ticks(self) -> dict[str, datetime]:
        return await self._call(self._store.last_ticks)

    async def prune_ticks(self, *, older_than: float) -> int:
        return await self._call(self._store.prune_ticks, older_than=older_than)

    # -- claiming, leases, acknowledgements ---------------------------------------------------

    async def claim_jobs(
        self,
        queue: str,
        worker_id: str,
        limit: int,
        *,
        lease: float | None = None,
        started: bool | None = None,
    ) -> list[JobRecord]:
        return await self._call(
            self._store.claim_jobs, queue, worker_id, limit, lease=lease, started=started
        )

    async def screen_claimed(
        self, records: Sequence[JobRecord], *, grace: float | None = None
    ) -> list[tuple[JobRecord, Job]]:
        """Decode claimed records into Job instances; hand back the ones that cannot run."""
        return await self._call(self._store.screen_claimed, records, grace=grace)

    async def renew_leases(
        self,
        worker_id: str,
        jids: Sequence[UUID],
        *,
        lease: float | None = None,
        unstarted: Sequence[UUID] = (),
    ) -> set[UUID]:
        return await self._call(
            self._store.renew_leases, worker_id, jids, lease=lease, unstarted=unstarted
        )

    async def complete_jobs(self, completions: Sequence[Completion]) -> list[UUID]:
        return await self._call(self._store.complete_jobs, completions)

    async def fail_jobs(
        self, failures: Sequence[Failure], *, dead_letter_ttl: float | None = None
    ) -> dict[UUID, JobStatus]:
        return await self._call(self._store.fail_jobs, failures, dead_letter_ttl=dead_letter_ttl)

    async def release_jobs(
        self,
        worker_id: str,
        jids: Sequence[UUID] | None = None,
        *,
        queue: str | None = None,
        limit: int | None = None,
        keep: Sequence[UUID] | None = None,
    ) -> list[UUID]:
        """See Store.release_jobs."""
        return await self._call(
            self._store.release_jobs, worker_id, jids, queue=queue, limit=limit, keep=keep
        )

    async def hand_back_jobs(
        self,
        hand_backs: Sequence[HandBack],
        *,
        grace: float | None = None,
        dead_letter_ttl: float | None = None,
    ) -> dict[UUID, JobStatus]:
        """See Store.hand_back_jobs."""
        return await self._call(
            self._store.hand_back_jobs, hand_backs, grace=grace, dead_letter_ttl=dead_letter_ttl
        )

    # -- maintenance ---------------------------------------------------------------------------

    async def rescue_expired_leases(
        self, queue: str | None = None, *, limit: int = 1000
    ) -> list[UUID]:
        return await self._call(self._store.rescue_expired_leases, queue, limit=limit)

    async def expire_waiting_jobs(self, *, limit: int = 1000) -> list[UUID]:
        return await self._call(self._store.expire_waiting_jobs, limit=limit)

    async def purge_dead(self, *, limit: int = 1000) -> int:
        return await self._call(self._store.purge_dead, limit=limit)

    async def prune_completed(self, *, limit: int = 1000) -> int:
        return await self._call(self._store.prune_completed, limit=limit)

    async def due_jobs(self, at: datetime, limit: int, *, take: bool) -> list[JobRecord]:
        return await self._call(self._store.due_jobs, at, limit, take=take)

    async def upsert_job(
        self,
        document: dict[str, Any],
        status: JobStatus,
        *,
        delay: float | None = None,
        run_at: datetime | None = None,
        dead_until: datetime | None = None,
        dead_reason: str | None = None,
    ) -> None:
        await self._call(
            self._store.upsert_job,
            document,
            status,
            delay=delay,
            run_at=run_at,
            dead_until=dead_until,
            dead_reason=dead_reason,
        )

    # -- reading -------------------------------------------------------------------------------

    async def get_job(self, jid: UUID) -> JobRecord | None:
        return await self._call(self._store.get_job, jid)

    async def list_queue(self, queue: str, *, offset: int, limit: int) -> list[JobRecord]:
        return await self._call(self._store.list_queue, queue, offset=offset, limit=limit)

    async def count_jobs(self, queue: str, status: JobStatus, *, due_only: bool = False) -> int:
        return await self._call(self._store.count_jobs, queue, status, due_only=due_only)

    async def queue_size(self, queue_name: str) -> int:
        """Jobs of `queue_name` that are runnable now (waiting and due)."""
        return await self._call(self._store.queue_size, queue_name)

    async def processing_queue_size(self, queue_name: str) -> int:
        """Jobs of `queue_name` that are running."""
        return await self._call(self._store.processing_queue_size, queue_name)

    async def queue_stats(self) -> dict[str, QueueStats]:
        return await self._call(self._store.queue_stats)

    async def search_jobs(
        self,
        *,
        queue: str | None = None,
        status: JobStatus | None = None,
        job_type: str | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> list[JobRecord]:
        return await self._call(
            self._store.search_jobs,
            queue=queue,
            status=status,
            job_type=job_type,
            offset=offset,
            limit=limit,
        )

    async def now(self) -> datetime:
        return await self._call(self._store.now)

    # -- operating -----------------------------------------------------------------------------

    async def delete_jobs(self, jids: Sequence[UUID]) -> int:
        return await self._call(self._store.delete_jobs, jids)

    async def clear_waiting(self, queue: str) -> int:
        return await self._call(self._store.clear_waiting, queue)

    async def retry_jobs(self, jids: Sequence[UUID]) -> list[UUID]:
        return await self._call(self._store.retry_jobs, jids)

    async def retry_dead(self, *, queue: str | None = None, limit: int = 1000) -> list[UUID]:
        return await self._call(self._store.retry_dead, queue=queue, limit=limit)

    async def cancel_jobs(
        self, jids: Sequence[UUID], *, dead_letter_ttl: float | None = None
    ) -> dict[UUID, str]:
        return await self._call(self._store.cancel_jobs, jids, dead_letter_ttl=dead_letter_ttl)

    async def cancel_requested(self, worker_id: str, jids: Sequence[UUID]) -> set[UUID]:
        return await self._call(self._store.cancel_requested, worker_id, jids)

    async def delete_dead(self, *, queue: str | None = None, limit: int = 1000) -> int:
        return await self._call(self._store.delete_dead, queue=queue, limit=limit)

    async def pause_queue(self, queue: str) -> bool:
        return await self._call(self._store.pause_queue, queue)

    async def resume_queue(self, queue: str) -> bool:
        return await self._call(self._store.resume_queue, queue)

    async def paused_queues(self) -> set[str]:
        return await self._call(self._store.paused_queues)

    # -- workers and throughput --------------------------------------------------------------

    async def worker_seen(
        self,
        worker_id: str,
        *,
        host: str,
        pid: int,
        queues: Sequence[str],
        heartbeat_interval: float = DEFAULT_HEARTBEAT_INTERVAL,
    ) -> None:
        await self._call(
            self._store.worker_seen,
            worker_id,
            host=host,
            pid=pid,
            queues=queues,
            heartbeat_interval=heartbeat_interval,
        )

    async def worker_gone(self, worker_id: str) -> None:
        await self._call(self._store.worker_gone, worker_id)

    async def live_workers(self, *, within: float | None = None) -> list[WorkerInfo]:
        return await self._call(self._store.live_workers, within=within)

    async def prune_workers(self, *, limit: int = 1000) -> int:
        return await self._call(self._store.prune_workers, limit=limit)

    async def completed_per_minute(
        self, *, since: float = 3600.0
    ) -> dict[str, dict[datetime, int]]:
        return await self._call(self._store.completed_per_minute, since=since)

    async def prune_history(self, *, older_than: float = 86400.0) -> int:
        return await self._call(self._store.prune_history, older_than=older_than)


class AsyncStoreAdapter(AsyncStore):
    """An AsyncStore over any sync Store. Calls run in a worker thread (``asyncio.to_thread``),
    or inline when `inline`: by default, for a store whose calls never wait on I/O
    (`Store.never_blocks`, as MemoryStore's)."""

    def __init__(self, store: Store, *, inline: bool | None = None) -> None:
        if not isinstance(store, Store):
            raise TypeError(f"AsyncStoreAdapter needs a joobq_sql.Store, got {store!r}")
        self.store = store
        self.inline = store.never_blocks if inline is None else bool(inline)

    @property
    def _store(self) -> Store:
        return self.store

    async def _call(self, method: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        if self.inline:
            return method(*args, **kwargs)
        return await asyncio.to_thread(method, *args, **kwargs)


class AsyncPostgresStore(AsyncStore):
    """The Store on PostgreSQL, from asyncio.

    Build it from a URL (``postgresql+psycopg://...``; plain ``postgresql://`` works too), else
    JOOBQ_DATABASE_URL, else DATABASE_URL; or from your own AsyncEngine on the psycopg driver.
    The settings mean what they mean for PostgresStore, and both stores see the same jobs.

    Event loops: pooled asyncio connections belong to the loop that opened them. A store built
    from a URL therefore keeps one AsyncEngine per event loop, so one store can serve your
    application's loop, a worker's loop and successive ``asyncio.run`` calls. A store built on
    your AsyncEngine always uses that engine, on whatever loop calls it. ``await aclose()``
    before a loop ends closes that loop's connections.
    """

    def __init__(
        self,
        url_or_engine: str | URL | AsyncEngine | None = None,
        *,
        schema: str = DEFAULT_SCHEMA,
        pool_size: int = 10,
        lease: timedelta | float = DEFAULT_LEASE,
        dead_letter_ttl: timedelta | float = DEFAULT_DEAD_LETTER_TTL,
        keep_completed: timedelta | float | None = None,
        notify: bool = True,
    ) -> None:
        if importlib.util.find_spec("greenlet") is None:
            raise ConfigurationError(
                "AsyncPostgresStore needs the greenlet package (SQLAlchemy's asyncio support): "
                "it is a dependency of joobq-sql; pip install greenlet"
            )
        if url_or_engine is None:
            url_or_engine = url_from_environment()
            if url_or_engine is None:
                raise ConfigurationError(
                    "no database given: pass a URL or AsyncEngine to AsyncPostgresStore, "
                    "or set JOOBQ_DATABASE_URL"
                )
        self._lock = threading.Lock()
        self._engines: dict[asyncio.AbstractEventLoop, AsyncEngine] = {}
        self._given_engine: AsyncEngine | None = None
        if isinstance(url_or_engine, AsyncEngine):
            if url_or_engine.dialect.driver != "psycopg":
                raise ConfigurationError(
                    f"the AsyncEngine uses the {url_or_engine.dialect.driver!r} driver; "
                    "AsyncPostgresStore needs postgresql+psycopg"
                )
            self._given_engine = first = url_or_engine
            self.url = first.url
        elif isinstance(url_or_engine, str | URL):
            self.url = _async_url(url_or_engine)
            if isinstance(pool_size, bool) or not isinstance(pool_size, int) or pool_size < 1:
                raise ValueError(f"pool_size must be an integer >= 1, got {pool_size!r}")
            first = self._new_engine(pool_size)
        else:
            raise TypeError(
                "AsyncPostgresStore needs a URL string or an SQLAlchemy AsyncEngine, "
                f"got {url_or_engine!r}"
            )
        self.pool_size = pool_size
        # The engine made now serves the first loop that uses the store.
        self._unclaimed: AsyncEngine | None = None if self._given_engine else first
        self._impl = _GreenPostgresStore(
            self,
            first.sync_engine,
            schema=schema,
            lease=lease,
            dead_letter_ttl=dead_letter_ttl,
            keep_completed=keep_completed,
            notify=notify,
        )
        self.schema = self._impl.schema
        self.notify = self._impl.notify
        self.channel = self._impl.channel
        self.keep_completed_seconds = self._impl.keep_completed_seconds

    @classmethod
    def from_store(cls, store: PostgresStore, *, pool_size: int = 10) -> AsyncPostgresStore:
        """An AsyncPostgresStore on the database of `store`, with its schema and settings."""
        return cls(
            store.engine.url,
            schema=store.schema,
            pool_size=pool_size,
            lease=store.lease_seconds,
            dead_letter_ttl=store.dead_letter_ttl_seconds,
            keep_completed=store.keep_completed_seconds,
            notify=store.notify,
        )

    def sibling(self) -> AsyncPostgresStore:
        """A new store on the same database with the same settings, and engines of its own."""
        return type(self)(
            self.url,
            schema=self.schema,
            pool_size=self.pool_size,
            lease=self.lease_seconds,
            dead_letter_ttl=self.dead_letter_ttl_seconds,
            keep_completed=self.keep_completed_seconds,
            notify=self.notify,
        )

    @property
    def engine(self) -> AsyncEngine:
        """The AsyncEngine this store uses on the running event loop."""
        if self._given_engine is not None:
            return self._given_engine
        loop = asyncio.get_running_loop()
        with self._lock:
            engine = self._engines.get(loop)
            if engine is None:
                for old in [old for old in self._engines if old.is_closed()]:
                    # That loop is gone, and so are the sockets' waiters: drop the pool.
                    self._engines.pop(old).sync_engine.dispose(close=False)
                engine = self._unclaimed or self._new_engine(self.pool_size)
                self._unclaimed = None
                self._engines[loop] = engine
            return engine

    def _new_engine(self, pool_size: int) -> AsyncEngine:
        engine = create_async_engine(self.url, pool_size=pool_size, max_overflow=pool_size)
        check_idle_connections(engine.sync_engine)
        return engine

    @property
    def _store(self) -> Store:
        return self._impl

    async def _call(self, method: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        # A partial: greenlet_spawn keeps a keyword argument of its own.
        return await concurrency.greenlet_spawn(functools.partial(method, *args, **kwargs))

    async def _transaction(self, connection: Any) -> psycopg.AsyncConnection[Any]:
        """The psycopg connection under your AsyncSession or AsyncConnection (or a
        psycopg.AsyncConnection itself), in its current transaction."""
        if isinstance(connection, psycopg.AsyncConnection):
            return connection
        if isinstance(connection, AsyncSession):
            connection = await connection.connection()  # begins the session's transaction
        if isinstance(connection, AsyncConnection):
            if not connection.in_transaction():
                # As a statement through SQLAlchemy would: autobegin, so that your
                # `await connection.commit()` commits the job and a rollback drops it.
                await connection.begin()
            raw = await connection.get_raw_connection()
            driver = raw.driver_connection
            if isinstance(driver, psycopg.AsyncConnection):
                return driver
        raise TypeError(
            "connection must be an SQLAlchemy AsyncConnection or AsyncSession on the psycopg "
            f"driver (or a psycopg.AsyncConnection), got {type(connection).__name__}"
        )

    async def aclose(self) -> None:
        """Close this store's connections on the running event loop. The store stays usable:
        it opens new connections if it is used again."""
        if self._given_engine is not None:
            return  # your engine: you dispose of it
        loop = asyncio.get_running_loop()
        with self._lock:
            engine = self._engines.pop(loop, None)
        if engine is not None:
            await engine.dispose()

    def close(self) -> None:
        """Close the connections of every event loop (from outside those loops). Connections
        of a loop that has ended are dropped without a goodbye to the server."""
        if self._given_engine is not None:
            return
        with self._lock:
            engines, self._engines = self._engines, {}
            self._unclaimed = None
        for loop, engine in engines.items():
            running_elsewhere = loop.is_running() and not _is_current(loop)
            if running_elsewhere:
                future = asyncio.run_coroutine_threadsafe(engine.dispose(), loop)
                with contextlib.suppress(Exception):
                    future.result(timeout=5)
                    continue
            engine.sync_engine.dispose(close=False)


def _is_current(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


def _async_url(url: str | URL) -> URL:
    try:
        parsed = make_url(url)
    except Exception as exc:
        raise ConfigurationError(f"database URL is not a valid URL: {exc}") from None
    if parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg_async"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.drivername != "postgresql+psycopg":
        raise ConfigurationError(
            f"database URL driver {parsed.drivername!r} is not supported; "
            "use postgresql:// or postgresql+psycopg://"
        )
    return parsed


class _GreenPostgresStore(PostgresStore):
    """PostgresStore whose cursors await psycopg.AsyncConnection (inside greenlet_spawn)."""

    def __init__(self, owner: AsyncPostgresStore, engine: Engine, **options: Any) -> None:
        super().__init__(engine, **options)
        self._db = _GreenConnections(owner)

    def close(self) -> None:
        """The owner closes the engines."""


class _GreenConnections(Connections):
    """Connections.cursor() for code running in a greenlet: the same transaction rules (each
    block one transaction of its own, or the caller's), with I/O awaited on the event loop."""

    def __init__(self, owner: AsyncPostgresStore) -> None:
        self._owner = owner

    @contextlib.contextmanager
    def cursor(
        self, connection: Any = None, *, row_factory: Any = dict_row, autocommit: bool = False
    ) -> Iterator[psycopg.Cursor[Any]]:
        if connection is not None:
            # The caller owns the transaction (resolved by AsyncPostgresStore._transaction).
            with _translated_errors(), _green_cursor(connection, row_factory) as cur:
                yield cur
            return
        pooled = checked_out(self._owner.engine.sync_engine)
        conn = pooled.driver_connection
        assert isinstance(conn, psycopg.AsyncConnection)
        switched = autocommit and not conn.autocommit  # one already so is left as it is
        try:
            if switched:
                _await(conn.set_autocommit(True))  # no I/O: psycopg only stops sending BEGIN
            with _translated_errors(), _green_cursor(conn, row_factory) as cur:
                yield cur
            if not autocommit:
                _await(conn.commit())
        except BaseException:
            if conn.broken or conn.closed:
                pooled.invalidate()  # never hand a dead connection to the next caller
            else:
                with contextlib.suppress(psycopg.Error):
                    _await(conn.rollback())
            raise
        finally:
            if switched and pooled.is_valid:
                try:  # back to the pool with transactions on, as every other block expects
                    _await(conn.set_autocommit(False))
                except psycopg.Error:
                    pooled.invalidate()
            pooled.close()

    def dispose(self) -> None:
        """The owner disposes of its engines."""


@contextlib.contextmanager
def _green_cursor(
    conn: psycopg.AsyncConnection[Any], row_factory: Any
) -> Iterator[psycopg.Cursor[Any]]:
    cursor = conn.cursor(row_factory=row_factory)
    try:
        # Typed as the sync cursor it stands in for: the store calls only what _GreenCursor has.
        yield cast("psycopg.Cursor[Any]", _GreenCursor(cursor))
    finally:
        _await(cursor.close())


class _GreenCursor:
    """The sync face of a psycopg AsyncCursor, for code running inside greenlet_spawn."""

    def __init__(self, cursor: psycopg.AsyncCursor[dict[str, Any]]) -> None:
        self._cursor = cursor

    def execute(self, query: Any, params: Any = None, **kwargs: Any) -> _GreenCursor:
        _await(self._cursor.execute(query, params, **kwargs))
        return self

    def executemany(self, query: Any, params_seq: Any, **kwargs: Any) -> None:
        _await(self._cursor.executemany(query, params_seq, **kwargs))

    def fetchone(self) -> dict[str, Any] | None:
        return cast("dict[str, Any] | None", _await(self._cursor.fetchone()))

    def fetchmany(self, size: int = 0) -> list[dict[str, Any]]:
        return cast("list[dict[str, Any]]", _await(self._cursor.fetchmany(size)))

    def fetchall(self) -> list[dict[str, Any]]:
        return cast("list[dict[str, Any]]", _await(self._cursor.fetchall()))

    @contextlib.contextmanager
    def copy(self, statement: Any, params: Any = None, **kwargs: Any) -> Iterator[_GreenCopy]:
        block = self._cursor.copy(statement, params, **kwargs)
        copy = _await(block.__aenter__())
        try:
            yield _GreenCopy(copy)
        except BaseException as exc:
            if not _await(block.__aexit__(type(exc), exc, exc.__traceback__)):
                raise
        else:
            _await(block.__aexit__(None, None, None))

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def connection(self) -> psycopg.AsyncConnection[Any]:
        """Only for what needs no round trip: its `info` (the claim reads the server version)."""
        return self._cursor.connection

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def statusmessage(self) -> str | None:
        return self._cursor.statusmessage


class _GreenCopy:
    """The sync face of a psycopg AsyncCopy (COPY FROM STDIN), for the same greenlet code."""

    def __init__(self, copy: psycopg.AsyncCopy) -> None:
        self._copy = copy

    def set_types(self, types: Sequence[Any]) -> None:
        self._copy.set_types(types)

    def write_row(self, row: Sequence[Any]) -> None:
        _await(self._copy.write_row(row))

    def write(self, buffer: Any) -> None:
        _await(self._copy.write(buffer))
