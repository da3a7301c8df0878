"""Wake-ups over LISTEN/NOTIFY: the enqueue side sends them, a Listener thread receives them.

A release of claimed, unstarted jobs (release_jobs.sql) sends the same notification from its
own statement: the jobs are runnable again, and idle workers elsewhere should take them now.
A hand-back of unrunnable jobs sends none: they are due again only after a backoff.

Why the application sends the NOTIFY, and never a per-row trigger: at COMMIT a transaction that
notified takes a cluster-wide lock on the notification queue, so notifying transactions commit one
at a time. A trigger would notify once per inserted row; `notify_queues` sends one notification
per queue per transaction, from the same transaction as the INSERTs. PostgreSQL delivers it only if
that transaction commits, so a rolled-back enqueue wakes nobody.

Notifications are a latency hint, never the source of truth: they are lost while a listener is
disconnected, so workers keep polling, and a Listener asks for one catch-up poll
(`on_reconnect`) each time it re-establishes LISTEN. Poll-only mode, e.g. behind PgBouncer in
transaction mode where LISTEN cannot work, simply starts no Listener (or points the Listener's DSN
straight at PostgreSQL, bypassing the pooler).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from sqlalchemy import Engine
from sqlalchemy.engine import URL, make_url

from ...errors import ConfigurationError
from .queries import Queries
from .schema import validate_schema_name

logger = logging.getLogger("joobq_sql.notifier")

#: PostgreSQL truncates identifiers, channel names included, beyond 63 bytes (NAMEDATALEN - 1).
MAX_CHANNEL_BYTES = 63

#: Connection defaults for the listener's own connection; values in the caller's DSN win.
#: Keepalives let a listener behind a dropped NAT or firewall notice the dead socket in about a
#: minute instead of waiting silently forever for notifications that can no longer arrive.
_CONNECT_DEFAULTS: dict[str, Any] = {
    "application_name": "joobq-sql listener",
    "connect_timeout": 5,
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
}


def channel_for(schema: str) -> str:
    """The NOTIFY channel of the jobs in `schema`: ``<schema>_jobs`` ("joobq" -> "joobq_jobs")."""
    channel = f"{validate_schema_name(schema)}_jobs"
    if len(channel.encode()) > MAX_CHANNEL_BYTES:
        raise ConfigurationError(
            f"schema {schema!r} is too long for a NOTIFY channel: {channel!r} exceeds "
            f"{MAX_CHANNEL_BYTES} bytes; use a schema name of at most {MAX_CHANNEL_BYTES - 5}"
        )
    return channel


def libpq_dsn(url_or_engine: str | URL | Engine) -> str:
    """The libpq form (for psycopg.connect) of an SQLAlchemy URL, or of an Engine's URL."""
    url = url_or_engine.url if isinstance(url_or_engine, Engine) else make_url(url_or_engine)
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def notify_queues(
    cursor: psycopg.Cursor[Any], queries: Queries, *, channel: str, queues: Collection[str]
) -> None:
    """Send one NOTIFY per distinct queue on `channel`, in `cursor`'s open transaction.

    It is delivered when that transaction commits and dropped if it rolls back. Does nothing for
    an empty collection.
    """
    if queues:
        cursor.execute(queries["notify_queues"], {"channel": channel, "queues": list(queues)})


@dataclass(frozen=True)
class ListenerStats:
    connected: bool
    reconnects: int  # LISTENs re-established after a lost connection or a failed attempt
    notifications: int
    last_error: str | None


class Listener:
    """A daemon thread that LISTENs on `channel` and calls `on_wake(queue)` for each NOTIFY.

    It owns one dedicated autocommit connection. When that connection breaks (a database restart,
    pg_terminate_backend, a dead network) it reconnects with exponential backoff and jitter, runs
    LISTEN again and calls `on_reconnect()`, because notifications sent meanwhile are lost. The
    first connection after `start()` is not a reconnect: the caller polls once at start-up itself.

    Callbacks run on the listener thread and must be quick (set an Event, put on a queue). An
    exception from a callback is logged and the thread carries on; nothing raises out of it.
    """

    def __init__(
        self,
        dsn: str,
        *,
        channel: str,
        on_wake: Callable[[str], None],
        on_reconnect: Callable[[], None] | None = None,
        poll_interval: float = 0.5,
        min_backoff: float = 0.1,
        max_backoff: float = 5.0,
    ) -> None:
        if not isinstance(dsn, str):
            raise TypeError(f"dsn must be a libpq connection string, got {type(dsn).__name__}")
        try:
            params = conninfo_to_dict(dsn)
        except psycopg.ProgrammingError as exc:
            raise ConfigurationError(f"dsn is not a valid libpq connection string: {exc}") from None
        if not isinstance(channel, str) or not channel:
            raise ConfigurationError(f"channel must be a non-empty str, got {channel!r}")
        if len(channel.encode()) > MAX_CHANNEL_BYTES:
            raise ConfigurationError(f"channel {channel!r} exceeds {MAX_CHANNEL_BYTES} bytes")
        if not callable(on_wake) or (on_reconnect is not None and not callable(on_reconnect)):
            raise TypeError("on_wake and on_reconnect must be callables")
        for what, value in (("poll_interval", poll_interval), ("min_backoff", min_backoff)):
            if not value > 0:
                raise ConfigurationError(f"{what} must be > 0 seconds, got {value!r}")
        if not max_backoff >= min_backoff:
            raise ConfigurationError(
                f"max_backoff ({max_backoff!r}) must be >= min_backoff ({min_backoff!r})"
            )
        self._conninfo = make_conninfo("", **{**_CONNECT_DEFAULTS, **params})
        self.channel = channel
        self._on_wake = on_wake
        self._on_reconnect = on_reconnect
        self._poll_interval = poll_interval
        self._min_backoff = min_backoff
        self._max_backoff = max_backoff
        self._stopping = threading.Event()
        self._connected = threading.Event()
        self._lock = threading.Lock()
        self._reconnects = 0
        self._notifications = 0
        self._last_error: str | None = None
        self._backend_pid: int | None = None
        self._thread = threading.Thread(target=self._run, name=f"joobq-listener-{channel}")
        self._thread.daemon = True

    # -- public ----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the thread; it connects in the background (see `wait_connected`)."""
        if self._thread.ident is not None:
            raise RuntimeError("this Listener was already started; create a new one")
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> bool:
        """Ask the thread to end and wait up to `timeout` s; True if it has ended."""
        self._stopping.set()
        if self._thread.ident is None or self._thread is threading.current_thread():
            return self._thread.ident is None
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def wait_connected(self, timeout: float) -> bool:
        """Wait until LISTEN is in effect; False if it is not within `timeout` seconds."""
        return self._connected.wait(timeout)

    @property
    def stats(self) -> ListenerStats:
        with self._lock:
            return ListenerStats(
                connected=self._connected.is_set(),
                reconnects=self._reconnects,
                notifications=self._notifications,
                last_error=self._last_error,
            )

    @property
    def backend_pid(self) -> int | None:
        """The server process id of the listening connection, None while disconnected."""
        return self._backend_pid

    # -- the thread ------------------------------------------------------------------------

    def _run(self) -> None:
        failures = 0  # consecutive; sets the backoff, and makes the next LISTEN a reconnect
        while not self._stopping.is_set():
            connected_at: float | None = None
            if failures:
                self._stopping.wait(self._backoff(failures))
                if self._stopping.is_set():
                    break
            try:
                with psycopg.connect(self._conninfo, autocommit=True) as conn:
                    conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
                    self._backend_pid = conn.info.backend_pid
                    connected_at = time.monotonic()
                    self._connected.set()
                    if failures:
                        with self._lock:
                            self._reconnects += 1
                        logger.info("listener on %r reconnected", self.channel)
                        self._call(self._on_reconnect)
                    self._receive(conn)
                failures = 0
            except Exception as exc:  # the thread must outlive any failure
                if connected_at is not None and time.monotonic() - connected_at > self._max_backoff:
                    failures = 0  # a long-lived connection was lost: retry from the short delay
                failures += 1
                with self._lock:
                    self._last_error = f"{type(exc).__name__}: {exc}".strip()
                logger.warning(
                    "listener on %r: connection failed or lost (attempt %d): %s",
                    self.channel,
                    failures,
                    self._last_error,
                )
            finally:
                self._connected.clear()
                self._backend_pid = None

    def _receive(self, conn: psycopg.Connection[Any]) -> None:
        # notifies(timeout=...) returns every poll_interval, so stop() is seen that quickly.
        while not self._stopping.is_set():
            for notify in conn.notifies(timeout=self._poll_interval):
                with self._lock:
                    self._notifications += 1
                self._call(self._on_wake, notify.payload)
                if self._stopping.is_set():
                    return

    def _backoff(self, failures: int) -> float:
        # Doubling from min_backoff up to max_backoff; the random half spreads out the reconnects
        # of many workers after a database restart.
        delay = min(self._max_backoff, self._min_backoff * 2 ** (failures - 1))
        return random.uniform(delay / 2, delay)

    def _call(self, callback: Callable[..., None] | None, *args: Any) -> None:
        if callback is None:
            return
        try:
            callback(*args)
        except Exception:
            logger.exception("listener on %r: callback %r raised", self.channel, callback)
