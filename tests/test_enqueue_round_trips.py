"""What an enqueue costs on the wire, read from libpq's own trace of the connection: outside
a caller's transaction a single enqueue is one prepared statement in one round trip (its own
transaction, the wake-up in it); inside a caller's transaction it adds that one statement and
nothing else. The sync and the async API alike. And the bulk path's own formatting (COPY text
built by the store, rows built once per class) stores exactly what was asked for.

The trace starts when the pool hands a connection out and stops when it comes back, so the
pool's own liveness ping of a connection idle for a second (_connections.PING_AFTER_IDLE) is
not counted: a busy enqueuer's connections never sit that long.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from uuid import uuid4

import psycopg
import pytest
from psycopg import pq
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.ext.asyncio import create_async_engine

from joobq_sql import DuplicateJobError, Job, JobStatus, JoobQ, NewJob, PostgresStore
from joobq_sql.store.postgres.store import COPY_THRESHOLD
from tests.conftest import libpq_url


class RoundTripMail(Job):
    queue = "round-trips"
    to: str

    def perform(self) -> None:
        pass


class RoundTripReport(Job):
    queue = "round-trips"
    priority = 3
    retries = 7
    expires = timedelta(hours=2)
    name: str
    pages: list[int] = dataclasses.field(default_factory=list)

    def unique_key(self) -> str | None:
        return self.name if self.name.startswith("unique") else None

    def perform(self) -> None:
        pass


# -- reading libpq's trace ---------------------------------------------------------------------


@dataclass(frozen=True)
class Message:
    direction: str  # "F" frontend (sent by us), "B" backend (sent by the server)
    kind: str  # the protocol message: Query, Parse, Bind, Execute, Sync, ReadyForQuery, ...
    body: str


class Trace:
    """The protocol messages of the connections traced: libpq writes one line per message."""

    def __init__(self) -> None:
        self._files: list[Any] = []
        self._traced: list[pq.abc.PGconn] = []
        self.messages: list[Message] = []

    def start(self, pgconn: pq.abc.PGconn) -> None:
        file = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - closed by stop()
        pgconn.trace(file.fileno())
        pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)
        self._files.append(file)
        self._traced.append(pgconn)

    def stop(self) -> None:
        """Stop every trace (libpq flushes it then) and read the messages so far."""
        for pgconn in self._traced:
            pgconn.untrace()
        self._traced.clear()
        for file in self._files:
            file.seek(0)
            for line in file.read().splitlines():
                direction, _, rest = line.partition("\t")
                if direction not in ("F", "B"):  # a message's text goes on (a query's lines)
                    last = self.messages.pop()
                    self.messages.append(dataclasses.replace(last, body=f"{last.body}\n{line}"))
                    continue
                _length, kind, *body = rest.split("\t")
                self.messages.append(Message(direction, kind, " ".join(body)))
            file.close()
        self._files.clear()

    def sent(self, kind: str) -> list[Message]:
        return [m for m in self.messages if m.direction == "F" and m.kind == kind]

    def received(self, kind: str) -> list[Message]:
        return [m for m in self.messages if m.direction == "B" and m.kind == kind]

    @property
    def round_trips(self) -> int:
        """Each round trip ends with the server's ReadyForQuery (one per Sync or Query)."""
        return len(self.received("ReadyForQuery"))

    @property
    def statements(self) -> int:
        """Statements run: extended-protocol Executes plus simple-protocol Queries (which is
        how psycopg sends BEGIN and COMMIT)."""
        return len(self.sent("Execute")) + len(self.sent("Query"))

    def summary(self) -> str:
        return "\n".join(f"{m.direction} {m.kind} {m.body[:100]}" for m in self.messages)


@contextlib.contextmanager
def traced_pool(engine: Engine) -> Iterator[Trace]:
    """Trace every connection `engine`'s pool hands out while the block runs (an
    AsyncEngine's: pass its sync_engine)."""
    trace = Trace()

    def on_checkout(_dbapi: Any, _record: Any, proxy: Any) -> None:
        trace.start(proxy.driver_connection.pgconn)

    event.listen(engine, "checkout", on_checkout)
    try:
        yield trace
    finally:
        event.remove(engine, "checkout", on_checkout)
        trace.stop()


@contextlib.contextmanager
def traced_connection(connection: Any) -> Iterator[Trace]:
    """Trace the psycopg connection under an SQLAlchemy Connection while the block runs."""
    trace = Trace()
    trace.start(connection.connection.driver_connection.pgconn)
    try:
        yield trace
    finally:
        trace.stop()


def assert_one_prepared_statement_in_one_round_trip(trace: Trace) -> None:
    """One statement, prepared (a Bind to a named statement, no Parse, no BEGIN or COMMIT),
    answered by one ReadyForQuery that leaves no transaction open ("I"): the statement was
    its own transaction."""
    summary = trace.summary()
    assert trace.round_trips == 1, summary
    assert trace.statements == 1, summary
    assert trace.sent("Query") == [] and trace.sent("Parse") == [], summary
    (bind,) = trace.sent("Bind")
    assert bind.body.split()[1].startswith('"_pg3_'), summary  # a prepared statement
    (ready,) = trace.received("ReadyForQuery")
    assert ready.body.strip() == "I", summary


@pytest.fixture
def app(make_app: Callable[..., JoobQ]) -> JoobQ:
    app = make_app()
    app.queue("round-trips", jobs=[RoundTripMail, RoundTripReport])
    return app


def stored(app: JoobQ, jid: Any) -> JobStatus | None:
    record = app.store.get_job(jid)
    return None if record is None else record.status


# -- the sync API ------------------------------------------------------------------------------


def test_job_enqueue_is_one_prepared_statement_in_one_round_trip(app: JoobQ) -> None:
    store = app.store
    assert isinstance(store, PostgresStore)
    RoundTripMail.enqueue(to="warm@example.com")  # the pool's connection, its statement made
    with traced_pool(store.engine) as trace:
        jid = RoundTripMail.enqueue(to="a@example.com")
    assert_one_prepared_statement_in_one_round_trip(trace)
    assert stored(app, jid) is JobStatus.ENQUEUED


def test_each_of_many_enqueues_is_one_round_trip_and_their_jobs_are_committed(
    app: JoobQ,
) -> None:
    store = app.store
    assert isinstance(store, PostgresStore)
    later = store.now() + timedelta(hours=1)
    # A connection prepares each form of the statement once (the first run of each form
    # costs a Parse round trip of its own): a job runnable now, and one with a run_at.
    RoundTripMail.enqueue(to="warm@example.com")
    RoundTripMail.enqueue_at(later, to="warm@example.com")
    with traced_pool(store.engine) as trace:
        jids = [RoundTripMail.enqueue(to=f"{n}@example.com") for n in range(10)]
        delayed = RoundTripMail.delay(60, to="later@example.com")
        at = RoundTripMail.enqueue_at(later, to="at@example.com")
    # 12 enqueues, each its own round trip, none inside BEGIN ... COMMIT.
    assert trace.round_trips == 12 and trace.sent("Query") == [], trace.summary()
    assert {stored(app, j) for j in jids} == {JobStatus.ENQUEUED}
    assert stored(app, delayed) is stored(app, at) is JobStatus.SCHEDULED


def test_a_connection_that_prepares_nothing_gets_one_unprepared_statement_per_enqueue(
    database_url: str,
) -> None:
    """prepare_threshold=None is how docs/scaling.md turns preparing off for a PgBouncer in
    transaction mode older than 1.21: the enqueue must not prepare its statement anyway."""
    engine = create_engine(database_url, connect_args={"prepare_threshold": None})
    store = PostgresStore(engine)
    try:
        for n in range(8):  # past psycopg's threshold of five, were it on
            store.enqueue_jobs([new_row(args={"n": n})])
        with traced_pool(engine) as trace:
            store.enqueue_jobs([new_row()])
    finally:
        store.close()
        engine.dispose()
    assert trace.round_trips == 1 and trace.statements == 1, trace.summary()
    (parse,) = trace.sent("Parse")
    assert parse.body.split()[0] == '""', trace.summary()  # the unnamed statement
    assert trace.sent("Query") == [], trace.summary()


def test_the_pool_gets_its_connections_back_in_the_mode_they_were_lent(
    database_url: str,
) -> None:
    """The enqueue switches a pooled connection to autocommit for its one statement, and back:
    to transactions on the store's own engine, and left in autocommit on an engine of yours
    made so (isolation_level="AUTOCOMMIT")."""
    for isolation, expected in ((None, False), ("AUTOCOMMIT", True)):
        options = {} if isolation is None else {"isolation_level": isolation}
        engine = create_engine(database_url, pool_size=1, max_overflow=0, **options)
        store = PostgresStore(engine)
        try:
            store.enqueue_jobs([new_row()])
            store.enqueue_jobs([new_row() for _ in range(3)])
            pooled = engine.raw_connection()
            try:
                assert pooled.driver_connection.autocommit is expected, isolation
            finally:
                pooled.close()
        finally:
            store.close()
            engine.dispose()


def test_an_enqueue_in_the_callers_transaction_adds_one_statement_only(
    app: JoobQ, database_url: str
) -> None:
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            conn.execute(text("CREATE TABLE orders (id int)"))
            conn.execute(text("INSERT INTO orders VALUES (1)"))  # the caller's own work
            RoundTripMail.enqueue(to="warm@example.com", connection=conn)
            with traced_connection(conn) as trace:
                jid = RoundTripMail.enqueue(to="a@example.com", connection=conn)
            assert stored(app, jid) is None  # not committed yet
            conn.commit()
    finally:
        engine.dispose()
    assert trace.round_trips == 1 and trace.statements == 1, trace.summary()
    assert trace.sent("Query") == [], trace.summary()  # no SAVEPOINT, no RELEASE
    assert trace.received("ReadyForQuery")[0].body.strip() == "T"  # still the caller's
    assert stored(app, jid) is JobStatus.ENQUEUED


def test_a_rolled_back_callers_transaction_leaves_no_job(app: JoobQ, database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            jid = RoundTripMail.enqueue(to="a@example.com", connection=conn)
            conn.rollback()
    finally:
        engine.dispose()
    assert stored(app, jid) is None


# -- the async API -----------------------------------------------------------------------------


def test_await_job_enqueue_async_is_one_prepared_statement_in_one_round_trip(
    app: JoobQ,
) -> None:
    async def scenario() -> Any:
        async_store = app.async_store
        await RoundTripMail.enqueue_async(to="warm@example.com")
        with traced_pool(async_store.engine.sync_engine) as trace:  # type: ignore[attr-defined]
            jid = await RoundTripMail.enqueue_async(to="a@example.com")
        with traced_pool(async_store.engine.sync_engine) as app_trace:  # type: ignore[attr-defined]
            app_jid = await app.enqueue_async(RoundTripMail(to="b@example.com"))
        await app.aclose()
        return trace, jid, app_trace, app_jid

    trace, jid, app_trace, app_jid = asyncio.run(scenario())
    assert_one_prepared_statement_in_one_round_trip(trace)
    assert_one_prepared_statement_in_one_round_trip(app_trace)
    assert stored(app, jid) is stored(app, app_jid) is JobStatus.ENQUEUED


def test_an_async_enqueue_in_the_callers_transaction_adds_one_statement_only(
    app: JoobQ, database_url: str
) -> None:
    async def scenario() -> tuple[Trace, Any, JobStatus | None]:
        engine = create_async_engine(database_url)
        try:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))  # the caller's transaction has begun
                await RoundTripMail.enqueue_async(to="warm@example.com", connection=conn)
                raw = await conn.get_raw_connection()
                trace = Trace()
                trace.start(raw.driver_connection.pgconn)
                try:
                    jid = await RoundTripMail.enqueue_async(to="a@example.com", connection=conn)
                finally:
                    trace.stop()
                before_commit = stored(app, jid)
                await conn.commit()
        finally:
            await engine.dispose()
            await app.aclose()
        return trace, jid, before_commit

    trace, jid, before_commit = asyncio.run(scenario())
    assert trace.round_trips == 1 and trace.statements == 1, trace.summary()
    assert trace.sent("Query") == [], trace.summary()
    assert before_commit is None
    assert stored(app, jid) is JobStatus.ENQUEUED


# -- the wake-up rides in the statement --------------------------------------------------------


def test_the_wake_up_comes_at_commit_and_only_for_a_job_runnable_now(
    app: JoobQ, database_url: str
) -> None:
    store = app.store
    assert isinstance(store, PostgresStore)
    with psycopg.connect(libpq_url(database_url), autocommit=True) as listener:
        listener.execute(f"LISTEN {store.channel}")
        engine = create_engine(database_url)
        try:
            with engine.connect() as conn:
                RoundTripMail.enqueue(to="in-tx@example.com", connection=conn, queue="tx-queue")
                conn.rollback()  # dropped with the transaction
            RoundTripMail.delay(3600, to="later@example.com", queue="delayed-queue")
            with engine.connect() as conn:
                RoundTripMail.enqueue(to="in-tx@example.com", connection=conn, queue="tx-queue")
                conn.commit()
            RoundTripMail.enqueue(to="now@example.com", queue="now-queue")
        finally:
            engine.dispose()
        # Notifications arrive in commit order: the delayed job's, had it sent one, first.
        got = []
        for notify in listener.notifies(timeout=30, stop_after=2):
            got.append(notify.payload)
    assert got == ["tx-queue", "now-queue"]


def test_with_notify_off_an_enqueue_sends_no_wake_up(database_url: str) -> None:
    store = PostgresStore(database_url, notify=False)
    loud = PostgresStore(database_url)
    try:
        with psycopg.connect(libpq_url(database_url), autocommit=True) as listener:
            listener.execute(f"LISTEN {store.channel}")
            quiet = store.enqueue_jobs([new_row(queue="quiet")])
            store.enqueue_jobs([new_row(queue="quiet") for _ in range(3)])
            loud.enqueue_jobs([new_row(queue="loud")])
            got = [n.payload for n in listener.notifies(timeout=30, stop_after=1)]
        assert got == ["loud"]
        assert store.get_job(quiet[0]) is not None
    finally:
        store.close()
        loud.close()


# -- what a single enqueue still guarantees ----------------------------------------------------


def new_row(**overrides: Any) -> NewJob:
    values: dict[str, Any] = {"jid": uuid4(), "queue": "round-trips", "job_type": "Row"}
    values.update({"args": {}}, **overrides)
    return NewJob(**values)


def test_a_stored_jid_is_refused_with_the_jid_named_and_nothing_written(
    pg_store: PostgresStore, pg: psycopg.Connection
) -> None:
    taken = pg_store.enqueue_jobs([new_row(args={"n": 1})])[0]
    with pytest.raises(DuplicateJobError, match=str(taken)):
        pg_store.enqueue_jobs([new_row(jid=taken, args={"n": 2})])
    assert pg.execute("SELECT args FROM joobq.jobs").fetchall() == [({"n": 1},)]


def test_a_stored_jid_in_the_callers_transaction_leaves_it_usable(
    database_url: str, pg_store: PostgresStore, pg: psycopg.Connection
) -> None:
    taken = pg_store.enqueue_jobs([new_row()])[0]
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            conn.execute(text("CREATE TABLE orders (id int)"))
            with pytest.raises(DuplicateJobError, match=str(taken)):
                pg_store.enqueue_jobs([new_row(jid=taken)], connection=conn)
            conn.execute(text("INSERT INTO orders VALUES (1)"))  # the transaction goes on
            conn.commit()
    finally:
        engine.dispose()
    assert pg.execute("SELECT count(*) FROM orders").fetchone() == (1,)
    assert pg.execute("SELECT count(*) FROM joobq.jobs").fetchone() == (1,)


@pytest.mark.parametrize("on_duplicate", ["skip", "raise"])
def test_a_unique_single_enqueue_keeps_its_on_duplicate_rule(
    pg_store: PostgresStore, on_duplicate: str
) -> None:
    holder = pg_store.enqueue_jobs([new_row(unique_key="k")])[0]
    duplicate = new_row(unique_key="k", on_duplicate=on_duplicate)
    if on_duplicate == "skip":
        assert pg_store.enqueue_jobs([duplicate]) == [holder]
    else:
        with pytest.raises(DuplicateJobError, match=str(holder)):
            pg_store.enqueue_jobs([duplicate])
    assert pg_store.get_job(duplicate.jid) is None


# -- batches -----------------------------------------------------------------------------------


def test_a_small_batch_is_one_statement_in_one_round_trip(pg_store: PostgresStore) -> None:
    rows = [new_row(args={"n": n}) for n in range(5)]
    with traced_pool(pg_store.engine) as trace:
        assert pg_store.enqueue_jobs(rows) == [row.jid for row in rows]
    assert trace.round_trips == 1 and trace.statements == 1, trace.summary()
    assert trace.sent("Query") == [], trace.summary()  # no BEGIN, no COMMIT
    assert {pg_store.get_job(row.jid).status for row in rows} == {JobStatus.ENQUEUED}  # type: ignore[union-attr]


def test_a_small_batch_with_a_stored_jid_writes_none_of_it(
    pg_store: PostgresStore, pg: psycopg.Connection
) -> None:
    taken = pg_store.enqueue_jobs([new_row()])[0]
    with pytest.raises(DuplicateJobError, match=str(taken)):
        pg_store.enqueue_jobs([new_row(), new_row(jid=taken), new_row()])
    assert pg.execute("SELECT count(*) FROM joobq.jobs").fetchone() == (1,)


def test_a_batch_in_the_callers_transaction_is_written_whole_at_its_commit(
    pg_store: PostgresStore, database_url: str
) -> None:
    engine = create_engine(database_url)
    rows = [new_row(args={"n": n}) for n in range(5)]
    try:
        with engine.connect() as conn:
            pg_store.enqueue_jobs(rows, connection=conn)
            assert pg_store.get_job(rows[0].jid) is None
            conn.commit()
    finally:
        engine.dispose()
    assert all(pg_store.get_job(row.jid) is not None for row in rows)


# -- the bulk path: rows built once per class, COPY text built by the store ----------------------


def test_new_jobs_builds_the_rows_new_job_builds(app: JoobQ) -> None:
    jobs: list[Job] = []
    for n in range(20):
        jobs.append(RoundTripMail(to=f"{n}@example.com"))
        jobs.append(RoundTripReport(name=f"unique-{n}" if n % 2 else f"plain-{n}", pages=[n]))
    rows = app.new_jobs(jobs)
    expected = [app.new_job(job) for job in jobs]
    assert rows == expected
    assert [r.args_json for r in rows] == [r.args_json for r in expected]
    assert [r.jid for r in rows] == [job.jid for job in jobs]
    assert len({r.jid for r in rows}) == len(rows)
    assert {r.jid.version for r in rows} == {7}


def test_new_job_reuses_checked_options_only_while_they_are_the_same(
    app: JoobQ, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = app.new_job(RoundTripMail(to="a@example.com"), priority=1)
    assert app.new_job(RoundTripMail(to="b@example.com"), priority=1).priority == 1
    with pytest.raises((TypeError, ValueError), match="priority"):
        app.new_job(RoundTripMail(to="c@example.com"), priority=True)  # == 1, and refused
    monkeypatch.setattr(RoundTripMail, "retries", 9)  # a class changed at run time
    changed = app.new_job(RoundTripMail(to="d@example.com"), priority=1)
    assert (first.max_retries, changed.max_retries) == (app.settings.retries, 9)
    assert app.new_job(RoundTripMail(to="e@example.com"), queue="café").queue == "café"
    decomposed = app.new_job(RoundTripMail(to="f@example.com"), queue="cafe\u0301")
    assert decomposed.queue == "café"  # NFC, as a fresh check makes it


def test_with_job_carries_every_field_of_newjob() -> None:
    template = NewJob(
        jid=uuid4(),
        queue="q",
        job_type="T",
        args={"a": 1},
        priority=4,
        max_retries=9,
        delay=5.0,
        expires_in=60.0,
        unique_key="old",
        on_duplicate="raise",
    )
    jid = uuid4()
    row = template.with_job(jid, {"b": [1, "x"]}, "new")
    assert row == dataclasses.replace(template, jid=jid, args={"b": [1, "x"]}, unique_key="new")
    assert row.args_json == '{"b":[1,"x"]}'
    own = {"jid", "args", "args_json", "unique_key"}
    for field in dataclasses.fields(NewJob):  # a field added later must be carried too
        if field.name not in own:
            assert getattr(row, field.name) == getattr(template, field.name), field.name


def test_with_job_checks_the_values_it_takes() -> None:
    template = NewJob(jid=uuid4(), queue="q", job_type="T", args={})
    with pytest.raises(TypeError, match="jid must be a UUID"):
        template.with_job("not-a-uuid", {})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="field 'x'"):
        template.with_job(uuid4(), {"x": float("nan")})
    with pytest.raises(TypeError, match="U\\+0000"):
        template.with_job(uuid4(), {"x": "a\x00b"})
    with pytest.raises(ValueError, match="unique_key"):
        template.with_job(uuid4(), {}, "")


def test_a_bad_job_in_a_bulk_enqueue_names_its_field_and_nothing_is_written(
    app: JoobQ, pg: psycopg.Connection
) -> None:
    jobs = [RoundTripReport(name=f"r{n}") for n in range(300)]
    jobs[150].pages = [1, "two"]  # type: ignore[list-item]
    with pytest.raises(TypeError, match=r"RoundTripReport\.pages"):
        RoundTripReport.batch_enqueue(jobs)
    assert pg.execute("SELECT count(*) FROM joobq.jobs").fetchone() == (0,)


HOSTILE_TEXT = [
    "back\\slash",
    "tab\there",
    "new\nline",
    "carriage\rreturn",
    "\\N",
    "\\.",
    "quote \" and ' both",
    "café ☕ 𝄞",
    "\\\\\t\n",
]


#: A batch's two paths: a multi-row INSERT of array literals, and COPY of text rows.
PATHS = {"insert": 0, "copy": COPY_THRESHOLD}


@pytest.mark.parametrize("path", PATHS)
def test_a_batch_stores_every_hostile_value_exactly(
    pg_store: PostgresStore, pg: psycopg.Connection, path: str
) -> None:
    queue = "odd\\queue"
    rows = [
        new_row(
            queue=queue,
            job_type="Odd\\Type",
            args={"text": value, value: [value]},
            unique_key=None if path == "copy" else repr(value),  # names are visible
        )
        for value in HOSTILE_TEXT
    ]
    rows += [new_row(args={"n": n}) for n in range(PATHS[path])]
    assert pg_store.enqueue_jobs(rows) == [row.jid for row in rows]
    for row in rows:
        got = pg.execute(
            "SELECT queue, job_type, args, unique_key FROM joobq.jobs WHERE jid = %s", (row.jid,)
        ).fetchone()
        assert got == (row.queue, row.job_type, row.args, row.unique_key)


@pytest.mark.parametrize("path", PATHS)
def test_a_batch_keeps_run_times_and_expiries_of_each_job(
    pg_store: PostgresStore, pg: psycopg.Connection, path: str
) -> None:
    now = pg_store.now()
    at = now + timedelta(days=2, microseconds=7)
    rows = [
        new_row(args={"n": n}, delay=60.0 if n % 3 == 1 else 0.0, run_at=at if n % 3 == 2 else None)
        for n in range(max(PATHS[path], 9))
    ]
    rows[0] = new_row(expires_at=now + timedelta(days=1))
    rows[3] = new_row(expires_in=30.25)
    rows[4] = new_row(delay=0.123456)
    pg_store.enqueue_jobs(rows)
    records = {row.jid: pg_store.get_job(row.jid) for row in rows}
    for n, row in enumerate(rows):
        record = records[row.jid]
        assert record is not None
        if row.run_at is not None:
            assert record.status is JobStatus.SCHEDULED and record.run_at == at
        elif row.delay:
            assert record.status is JobStatus.SCHEDULED
            assert record.run_at - record.created_at == timedelta(seconds=row.delay), n
        else:
            assert record.status is JobStatus.ENQUEUED and record.run_at == record.created_at
    assert records[rows[0].jid].expires_at == now + timedelta(days=1)  # type: ignore[union-attr]
    first = records[rows[3].jid]
    assert first is not None and first.expires_at - first.created_at == timedelta(seconds=30.25)
