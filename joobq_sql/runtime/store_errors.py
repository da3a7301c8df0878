"""Which failures of a store write are worth retrying as they are.

A write fails either because of the rows it carries (a value the database or the driver refuses:
a DataError, an IntegrityError, a string that cannot be encoded), and then the same rows fail
the same way every time, or because of the database's state (a lost connection, a timeout, a
deadlock, a missing grant), and then the same write may well succeed later. The acknowledger
retries the second kind with backoff and splits a batch on the first kind, to find the rows
that cannot be written.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

import psycopg
import sqlalchemy.exc

from ..errors import ConfigurationError

#: The database or the link to it is away or busy: the same write may succeed later.
_TRANSIENT: Final = (
    psycopg.OperationalError,  # lost connection, timeouts, serialization failures, deadlocks
    psycopg.InterfaceError,
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.DisconnectionError,
    sqlalchemy.exc.TimeoutError,  # no pooled connection in time
    ConnectionError,
    TimeoutError,
)

#: The rows' values are refused: the same rows fail the same way every time.
_DETERMINISTIC: Final = (
    psycopg.DataError,  # 22xxx, and the driver's own "cannot contain NUL" refusal
    psycopg.IntegrityError,  # 23xxx
    UnicodeError,  # a lone surrogate the driver cannot encode
    ValueError,  # a value our own checks refuse before anything is sent
    TypeError,
)

#: Errors that say the set-up is wrong, not the rows, although ConfigurationError is a
#: ValueError. (A missing table or grant is a ProgrammingError: not deterministic either.)
_SET_UP: Final = (ConfigurationError,)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """`exc`, then what it wraps: SQLAlchemy's `.orig`, `__cause__`, `__context__`."""
    seen: set[int] = set()
    todo = [exc]
    while todo and len(seen) < 20:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        for linked in (getattr(current, "orig", None), current.__cause__, current.__context__):
            if isinstance(linked, BaseException):
                todo.append(linked)


def is_deterministic(exc: BaseException) -> bool:
    """True when `exc` says the written rows themselves were refused, so retrying the same
    rows cannot succeed; False when the same write may succeed later (or when unsure: a
    retry is always safe, dropping a row is not)."""
    chain = list(_chain(exc))
    if any(isinstance(e, _TRANSIENT) for e in chain):
        return False
    if any(isinstance(e, _SET_UP) for e in chain):
        return False
    return any(isinstance(e, _DETERMINISTIC) for e in chain)
