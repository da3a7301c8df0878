"""The jobs table's dead row versions, and the runtime's own VACUUM of it.

Every job leaves two dead row versions in the jobs table (its claim's UPDATE and its
completion's DELETE; neither can be a HOT update, as the status they change is in every
partial index's predicate). Autovacuum removes them, but its launcher visits a database only
every `autovacuum_naptime` (one minute by default, server-wide, often out of reach on a
managed server), and a busy queue leaves hundreds of thousands of dead versions in a minute.
The maintenance duty TableVacuumer reads the figures here and vacuums the table itself when
its dead share passes a threshold.
"""

from __future__ import annotations

from typing import Any

import psycopg

from ..table_health import TableHealth as TableHealth
from ..table_health import VacuumRefusedError as VacuumRefusedError
from ._connections import checked_out

#: Before 17 there is no MAINTAIN privilege: hot_table_health_pg15.sql tells ownership.
MAINTAIN_SERVER_VERSION = 170000
#: SQLSTATE of VACUUM's "skipping vacuum of ... --- lock not available" (SKIP_LOCKED).
LOCK_NOT_AVAILABLE = "55P03"


def health_statement(server_version: int) -> str:
    """The statement that reads TableHealth on a server of `server_version` (e.g. 170002)."""
    if server_version >= MAINTAIN_SERVER_VERSION:
        return "hot_table_health"
    return "hot_table_health_pg15"


def read_health(cur: psycopg.Cursor[Any], sql: str) -> list[TableHealth]:
    """Run `sql` (a hot_table_health statement) on a dict-row cursor."""
    cur.execute(sql)
    return [
        TableHealth(
            table=row["table_name"],
            live_rows=int(row["live_rows"]),
            dead_rows=int(row["dead_rows"]),
            since_vacuum_s=row["since_vacuum_s"],
            vacuuming=bool(row["vacuuming"]),
            may_vacuum=bool(row["may_vacuum"]),
        )
        for row in cur.fetchall()
    ]


def run_vacuum(engine: Any, sql: str) -> bool:
    """Run the VACUUM statement `sql` on a pooled connection switched to autocommit (VACUUM
    cannot run in a transaction). True when it ran; False when it skipped the table because
    another VACUUM holds it. VacuumRefusedError when the server skipped it for lack of
    privilege (a warning, not an error, in every supported version) or refused it."""
    pooled = checked_out(engine)
    conn: psycopg.Connection[Any] = pooled.driver_connection  # type: ignore[assignment]
    warnings: list[tuple[str | None, str | None]] = []  # (SQLSTATE, message)

    def collect(notice: psycopg.errors.Diagnostic) -> None:
        # Read now: the notice's fields are gone once the handler returns.
        if notice.severity_nonlocalized == "WARNING":
            warnings.append((notice.sqlstate, notice.message_primary))

    try:
        conn.rollback()  # autocommit can only be switched on outside a transaction
        conn.autocommit = True
        conn.add_notice_handler(collect)
        try:
            conn.execute(sql)
        except psycopg.errors.InsufficientPrivilege as exc:
            raise VacuumRefusedError(exc.diag.message_primary or str(exc)) from exc
        finally:
            conn.remove_notice_handler(collect)
            if not conn.closed:
                conn.autocommit = False
    except BaseException:
        if conn.broken or conn.closed:
            pooled.invalidate()
        raise
    finally:
        pooled.close()
    refused = [message for sqlstate, message in warnings if sqlstate != LOCK_NOT_AVAILABLE]
    if refused:
        raise VacuumRefusedError(refused[0] or "VACUUM skipped the table")
    return not warnings
