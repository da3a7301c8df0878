"""Cursors for the store: from its own pool, or inside a caller's transaction.

The store runs its statements on the psycopg connection under SQLAlchemy's pool rather than
through SQLAlchemy's execution layer: the hot path (claim, complete) is a few statements per
batch, and psycopg's own parameter binding and automatic statement preparation are the fastest
route to PostgreSQL.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg.abc import AdaptContext
from psycopg.adapt import Loader
from psycopg.rows import RowFactory, dict_row
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.pool import PoolProxiedConnection

from ...codec import UndecodableJSON
from ...errors import (
    ConfigurationError,
    DuplicateJobError,
    NothingSentError,
    SchemaNotMigratedError,
)


def engine_from_url(url: str, *, pool_size: int) -> Engine:
    """An Engine for `url`; plain postgresql:// URLs get the psycopg 3 driver."""
    try:
        parsed = make_url(url)
    except Exception as exc:
        raise ConfigurationError(f"database URL {url!r} is not a valid URL: {exc}") from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.drivername != "postgresql+psycopg":
        raise ConfigurationError(
            f"database URL driver {parsed.drivername!r} is not supported; "
            "use postgresql:// or postgresql+psycopg://"
        )
    engine = create_engine(parsed, pool_size=pool_size, max_overflow=pool_size)
    use_safe_loaders(engine, shared=False)
    check_idle_connections(engine)
    return engine


def check_idle_connections(engine: Engine) -> None:
    """Ping a pooled connection of `engine` that sat unused for PING_AFTER_IDLE before it is
    handed out (see _ping_if_idle). For an AsyncEngine, pass its sync_engine."""
    event.listen(engine, "checkin", _note_checkin)
    event.listen(engine, "checkout", _ping_if_idle)


#: Seconds a pooled connection may sit unused before it is checked at checkout.
PING_AFTER_IDLE = 1.0


def _note_checkin(_dbapi_connection: Any, record: Any) -> None:
    if record is not None:
        record.info["joobq_checked_in"] = time.monotonic()


def _ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
    """Replace a connection the server dropped while it sat in the pool (a restart, an idle
    timeout) instead of failing the caller's next statement with it.

    Only a connection idle for PING_AFTER_IDLE is pinged: a busy worker's connections are in
    use every few milliseconds, and a ping on every checkout would add a round trip to each
    claim and enqueue. A connection dropped in that last second fails its statement once;
    the runtime retries, and nothing uncommitted was written.
    """
    checked_in = record.info.get("joobq_checked_in")
    if checked_in is None or time.monotonic() - checked_in < PING_AFTER_IDLE:
        return
    try:
        # Through a cursor: a psycopg connection, or SQLAlchemy's adapter of an async one.
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("SELECT 1")
        finally:
            cursor.close()
        dbapi_connection.rollback()  # hand the connection over outside a transaction
    except Exception as exc:  # whatever failed, this connection cannot serve the caller
        # The pool discards this connection and checks out another (a fresh one if need be).
        raise DisconnectionError(f"pooled connection is gone: {exc}") from exc


def use_safe_loaders(engine: Engine, *, shared: bool) -> None:
    """Decode what the store reads on this engine's connections without failing on the values
    that Python cannot hold, so that one hand-made row never fails a whole claim (and so wedges
    its queue):

    - jsonb nested thousands of levels deep (PostgreSQL keeps it; json.loads raises
      RecursionError past about a thousand) decodes to an UndecodableJSON marker, and the job
      it belongs to goes dead with a clear reason;
    - timestamptz in year 1 or 9999 read on a session west or east of UTC (see
      _EdgeTimestamptzLoader).

    The timestamp loader is needed only on sessions not in UTC; on the store's own engine
    (`shared=False`) it is installed only there, because it costs a claim about a tenth of
    its time. A caller's engine (`shared=True`) always gets it: the caller may change a
    session's time zone after it connects.
    """
    listener = _install_shared_loaders if shared else _install_loaders
    if not event.contains(engine, "connect", listener):
        event.listen(engine, "connect", listener)


#: Time zone names under which year 1 and year 9999 read back as they are stored.
_UTC_ZONES = frozenset({"UTC", "Etc/UTC", "GMT", "Etc/GMT", "UCT", "Etc/UCT", "Universal"})


def _install_loaders(dbapi_connection: Any, _record: Any) -> None:
    in_utc = dbapi_connection.info.parameter_status("TimeZone") in _UTC_ZONES
    _register_loaders(dbapi_connection, edge_timestamps=not in_utc)


def _install_shared_loaders(dbapi_connection: Any, _record: Any) -> None:
    _register_loaders(dbapi_connection, edge_timestamps=True)


def _register_loaders(dbapi_connection: Any, *, edge_timestamps: bool) -> None:
    for name in ("json", "jsonb"):
        dbapi_connection.adapters.register_loader(name, _SafeJsonLoader)
    if edge_timestamps:
        dbapi_connection.adapters.register_loader("timestamptz", _EdgeTimestamptzLoader)


class _SafeJsonLoader(Loader):
    """json and jsonb text as Python values, or UndecodableJSON for absurd nesting.

    It decodes the UTF-8 text itself and calls the decoder directly: json.loads on bytes
    first guesses their encoding in Python, which costs a claim more than the decoding does.
    """

    def load(self, data: Any) -> Any:
        text = bytes(data).decode()
        try:
            return _decode_json(text)
        except RecursionError:
            return UndecodableJSON(text[:200])


_decode_json = json.JSONDecoder().decode


#: psycopg's own timestamptz text loader: its C version when psycopg runs on its C extension.
_TIMESTAMPTZ_LOADER = psycopg.adapters.get_loader(
    psycopg.adapters.types["timestamptz"].oid, psycopg.pq.Format.TEXT
)


class _EdgeTimestamptzLoader(Loader):
    """Loads timestamptz text like psycopg, plus the instants that only exist in UTC.

    PostgreSQL writes timestamptz in the session's time zone: west of UTC, 0001-01-01 00:00Z
    reads "0001-12-31 16:00:00-08 BC", east of UTC, 9999-12-31 23:59Z reads "10000-01-01 ...".
    Python has no year 0 or 10000, so psycopg refuses both, and one such row would fail every
    claim of its queue. Those are converted to UTC here, where they fit.

    Every other value goes to psycopg's own loader, which it wraps rather than subclasses: its
    C version cannot be subclassed, and the pure-Python one costs a claim a fifth of its time.
    """

    def __init__(self, oid: int, context: AdaptContext | None = None) -> None:
        super().__init__(oid, context)
        assert _TIMESTAMPTZ_LOADER is not None  # psycopg always registers one
        self._load = _TIMESTAMPTZ_LOADER(oid, context).load

    def load(self, data: Any) -> datetime:
        try:
            loaded: datetime = self._load(data)
            return loaded
        except psycopg.DataError:
            moment = _edge_instant(bytes(data).decode())
            if moment is None:
                raise
            return moment


_EDGE_TIMESTAMP = re.compile(
    r"^(\d{4,})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d)(?:\.(\d{1,6}))?"
    r"([+-])(\d\d)(?::(\d\d))?(?::(\d\d))?( BC)?$"
)
#: 400 Gregorian years, the calendar's period: shifting by it keeps every date valid.
_FOUR_CENTURIES = timedelta(days=146097)


def _edge_instant(text: str) -> datetime | None:
    match = _EDGE_TIMESTAMP.match(text)
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, sign, oh, om, os_, bc = match.groups()
    year_number = 1 - int(year) if bc else int(year)  # 1 BC is year 0
    shift = 400 if year_number < 1 else -400 if year_number > 9999 else 0
    microsecond = int((fraction or "0").ljust(6, "0"))
    try:
        wall = datetime(
            year_number + shift,
            int(month),
            int(day),
            int(hour),
            int(minute),
            int(second),
            microsecond,
        )
        offset = timedelta(hours=int(oh), minutes=int(om or 0), seconds=int(os_ or 0))
        utc = wall - offset if sign == "+" else wall + offset
        utc -= _FOUR_CENTURIES * (shift // 400)
    except (ValueError, OverflowError):
        return None
    return utc.replace(tzinfo=UTC)


def url_from_environment() -> str | None:
    return os.environ.get("JOOBQ_DATABASE_URL") or os.environ.get("DATABASE_URL") or None


def driver_connection(connection: Any) -> psycopg.Connection[Any]:
    """The psycopg connection under an SQLAlchemy Connection or Session (the caller's own)."""
    get_connection = getattr(connection, "connection", None)
    if callable(get_connection):  # a Session: its connection joins its transaction
        connection = connection.connection()
    # We write through the DBAPI connection, which SQLAlchemy does not watch: if SQLAlchemy
    # has not begun a transaction yet, begin it now, or the caller's commit() would find
    # nothing to commit and the job would be rolled back when the connection is returned.
    in_transaction = getattr(connection, "in_transaction", None)
    if callable(in_transaction) and not in_transaction():
        connection.begin()
    dbapi = getattr(getattr(connection, "connection", None), "driver_connection", None)
    if not isinstance(dbapi, psycopg.Connection):
        raise TypeError(
            "connection must be an SQLAlchemy Connection or Session on the psycopg driver, "
            f"got {type(connection).__name__}"
        )
    return dbapi


class ConnectFailedError(NothingSentError, psycopg.OperationalError):
    """No connection could be had: nothing was sent (see NothingSentError). Same message as
    psycopg's error, which is its __cause__."""


def checked_out(engine: Engine) -> PoolProxiedConnection:
    """A connection from `engine`'s pool. A failure to connect raises ConnectFailedError, an
    OperationalError marked as having sent nothing: a runner whose claim failed so claimed
    nothing, and has nothing to release (under a connection budget, that release would cost
    one more scarce connection)."""
    try:
        return engine.raw_connection()
    except psycopg.OperationalError as exc:
        if isinstance(exc, NothingSentError):
            raise
        raise ConnectFailedError(*exc.args) from exc


class Connections:
    """Hands out cursors. Each `cursor()` block is one transaction, committed on success."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @contextlib.contextmanager
    def cursor(
        self,
        connection: Any = None,
        *,
        row_factory: RowFactory[Any] = dict_row,
        autocommit: bool = False,
    ) -> Iterator[psycopg.Cursor[Any]]:
        """A cursor whose rows are dicts, unless `row_factory` says otherwise.

        With `autocommit` (and no caller's `connection`), each statement is its own
        transaction: for a block of one statement, which then costs one round trip instead
        of three (psycopg's BEGIN, the statement, COMMIT).
        """
        if connection is not None:
            # The caller owns the transaction: we neither commit nor roll back.
            with (
                _translated_errors(),
                driver_connection(connection).cursor(row_factory=row_factory) as cur,
            ):
                yield cur
            return
        pooled = checked_out(self.engine)
        conn: psycopg.Connection[Any] = pooled.driver_connection  # type: ignore[assignment]
        # A connection already in autocommit (an engine of yours made so) is left as it is.
        switched = autocommit and not conn.autocommit
        try:
            if switched:
                conn.autocommit = True  # no I/O: psycopg only stops sending BEGIN
            with _translated_errors(), conn.cursor(row_factory=row_factory) as cur:
                yield cur
            if not autocommit:
                conn.commit()
        except BaseException:
            if conn.broken or conn.closed:
                pooled.invalidate()  # never hand a dead connection to the next caller
            else:
                with contextlib.suppress(psycopg.Error):
                    conn.rollback()
            raise
        finally:
            if switched:
                _end_autocommit(conn, pooled)
            pooled.close()

    def dispose(self) -> None:
        self.engine.dispose()


def _end_autocommit(conn: psycopg.Connection[Any], pooled: PoolProxiedConnection) -> None:
    """Hand a connection back to the pool as every other block expects it: transactions on.
    One that cannot be switched back (broken, or left inside a transaction) is discarded."""
    if not pooled.is_valid:
        return  # already discarded
    try:
        conn.autocommit = False
    except psycopg.Error:
        pooled.invalidate()


@contextlib.contextmanager
def _translated_errors() -> Iterator[None]:
    try:
        yield
    except (psycopg.errors.UndefinedTable, psycopg.errors.InvalidSchemaName) as exc:
        raise SchemaNotMigratedError(
            f"the joobq tables are missing ({exc.diag.message_primary}); "
            "migrate the database first: joobq-sql migrate (or joobq_sql.migrate.upgrade(url))"
        ) from exc
    except psycopg.errors.UniqueViolation as exc:
        if exc.diag.constraint_name == "jobs_pkey":
            raise DuplicateJobError(
                f"a job with the same jid is already stored ({exc.diag.message_detail}); "
                "nothing of this batch was written"
            ) from exc
        if exc.diag.constraint_name == "jobs_unique_key_idx":
            raise DuplicateJobError(
                "that would make a second waiting or running job with the same unique key "
                f"({exc.diag.message_detail}); nothing was changed"
            ) from exc
        raise
