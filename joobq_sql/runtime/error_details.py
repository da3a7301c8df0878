"""What a failed run leaves on its job: JoobQ's error details, and the error_type classification.

`classify` sorts an exception into one of JoobQ's error types by walking its class's MRO from the
most derived class outwards. For each class it first looks the class up in `_CLASS_RULES` (exact
classes, or "module.QualName" strings for libraries we do not import here), then matches its name
against `_NAME_RULES` (case-insensitive fragments such as "Timeout"). The first hit wins, so a
subclass always beats its bases: `json.JSONDecodeError` is serialization although it is a
ValueError, and a user's `PaymentTimeout(ValueError)` is timeout.

Deliberate choices, each a rule below rather than a branch:

- Database driver errors: psycopg's OperationalError and InterfaceError (and SQLAlchemy's wrappers
  of them, DisconnectionError) are *connection*: the database, not the job's code, failed. That
  includes the transaction conflicts psycopg files under OperationalError (SerializationFailure,
  DeadlockDetected), which are as retryable as a dropped connection. QueryCanceled (a statement
  timeout) is *timeout*. DataError and IntegrityError are *validation* (the job's input does not
  fit), ProgrammingError is *implementation* (the SQL is wrong).
- Names in `psycopg.errors` are SQLSTATE condition names ("SerializationFailure",
  "InvalidPassword") that say nothing about the job, so name fragments are not applied to them.
- A SQLAlchemy error that wraps a driver error (`.orig`) is classified by the driver error first.
- A plain `OSError` whose errno is a network failure (ECONNRESET, ENETUNREACH, ...) is connection.
- Lookup, arithmetic and type errors, failed assertions and missing names are *implementation*:
  bugs in the job's code. A plain ValueError is *validation*.
- joobq-sql's own errors: ConfigurationError, SchemaNotMigratedError and UnknownJobTypeError (the
  worker does not import the job's class) are configuration; JobDecodeError is serialization.
"""

from __future__ import annotations

import errno
import json
import os
import pickle
import socket
import ssl
import traceback
from datetime import UTC, datetime
from typing import Any, Final
from uuid import UUID

from ..errors import (
    ConfigurationError,
    DuplicateJobError,
    JobDecodeError,
    SchemaNotMigratedError,
    UnknownJobTypeError,
)
from ..store.storable import storable_text, storable_value

ERROR_TYPES: Final = (
    "validation",
    "connection",
    "timeout",
    "serialization",
    "configuration",
    "implementation",
    "unknown",
)

MAX_MESSAGE_CHARS: Final = 2000
_MESSAGE_CUT_MARK: Final = "... [cut]"

# (error_type, classes): a class matches if it *is* one of these (or has that "module.QualName").
# Rows are only consulted per class of the MRO, so the order of rows matters only when one class
# appears in two rows, which none does.
_CLASS_RULES: Final[tuple[tuple[str, tuple[type[BaseException] | str, ...]], ...]] = (
    (
        "timeout",
        (TimeoutError, "psycopg.errors.QueryCanceled", "sqlalchemy.exc.TimeoutError"),
    ),
    (
        "connection",
        (
            ConnectionError,
            socket.gaierror,
            socket.herror,
            ssl.SSLError,
            "psycopg.OperationalError",
            "psycopg.InterfaceError",
            "sqlalchemy.exc.OperationalError",
            "sqlalchemy.exc.InterfaceError",
            "sqlalchemy.exc.DisconnectionError",
        ),
    ),
    (
        "serialization",
        (json.JSONDecodeError, UnicodeError, pickle.PickleError, JobDecodeError),
    ),
    (
        "configuration",
        (ConfigurationError, SchemaNotMigratedError, UnknownJobTypeError, ImportError),
    ),
    (
        "validation",
        (
            ValueError,
            DuplicateJobError,
            "psycopg.DataError",
            "psycopg.IntegrityError",
            "sqlalchemy.exc.DataError",
            "sqlalchemy.exc.IntegrityError",
        ),
    ),
    (
        "implementation",
        (
            NotImplementedError,
            AttributeError,
            NameError,
            TypeError,
            AssertionError,
            LookupError,
            ArithmeticError,
            RecursionError,
            "psycopg.ProgrammingError",
            "sqlalchemy.exc.ProgrammingError",
        ),
    ),
)

# (error_type, fragments): a class whose name contains one of these (ignoring case) matches.
# Order matters: "ConnectionTimeout" is timeout, "InvalidConfig" is configuration.
_NAME_RULES: Final[tuple[tuple[str, tuple[str, ...]], ...]] = (
    ("timeout", ("timeout",)),
    ("connection", ("connection", "disconnect")),
    ("serialization", ("serializ", "decode", "encode", "pickl")),
    ("configuration", ("config",)),
    ("validation", ("validation", "invalid")),
)

# Modules whose class names are catalog names, not descriptions of the failure.
_NO_NAME_RULES_MODULES: Final = frozenset({"psycopg.errors"})

_NETWORK_ERRNOS: Final = frozenset(
    getattr(errno, name)
    for name in (
        "ECONNREFUSED",
        "ECONNRESET",
        "ECONNABORTED",
        "EHOSTDOWN",
        "EHOSTUNREACH",
        "ENETDOWN",
        "ENETRESET",
        "ENETUNREACH",
        "ENOTCONN",
        "EPIPE",
    )
    if hasattr(errno, name)
)

_BY_CLASS: Final[dict[type[BaseException] | str, str]] = {
    cls: error_type for error_type, classes in _CLASS_RULES for cls in classes
}


def _qualified_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _classify_class(cls: type) -> str | None:
    """The error_type of one class of an MRO by itself, or None when no rule names it."""
    found = _BY_CLASS.get(cls) or _BY_CLASS.get(_qualified_name(cls))
    if found is not None:
        return found
    if cls.__module__ in _NO_NAME_RULES_MODULES:
        return None
    name = cls.__name__.lower()
    for error_type, fragments in _NAME_RULES:
        if any(fragment in name for fragment in fragments):
            return error_type
    return None


def classify(exc: BaseException) -> str:
    """JoobQ's error_type of `exc`: the first rule that matches its MRO, most derived class first.

    Returns one of `ERROR_TYPES`; "unknown" when no class of the MRO matches a rule (e.g. a bare
    Exception, RuntimeError, KeyboardInterrupt). See the module docstring for the rules.
    """
    orig = getattr(exc, "orig", None)
    if (
        isinstance(orig, BaseException)
        and orig is not exc
        and type(exc).__module__.startswith("sqlalchemy")
    ):
        wrapped = classify(orig)
        if wrapped != "unknown":
            return wrapped
    if type(exc) is OSError and exc.errno in _NETWORK_ERRNOS:
        return "connection"
    for cls in type(exc).__mro__:
        found = _classify_class(cls)
        if found is not None:
            return found
    return "unknown"


def error_class_name(exc: BaseException) -> str:
    """`ValueError` for builtins, `module.QualName` (e.g. `json.decoder.JSONDecodeError`) else."""
    cls = type(exc)
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return _qualified_name(cls)


def _safe_str(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:  # a broken __str__ must not lose the failure being recorded
        return f"<unprintable {type(exc).__name__}>"


def _safe_repr(value: BaseException) -> str:
    try:
        return repr(value)
    except Exception:
        return f"<unrepresentable {type(value).__name__}>"


def _cut_message(message: str) -> str:
    if len(message) <= MAX_MESSAGE_CHARS:
        return message
    return message[: MAX_MESSAGE_CHARS - len(_MESSAGE_CUT_MARK)] + _MESSAGE_CUT_MARK


def format_backtrace(exc: BaseException, max_lines: int = 20) -> str:
    """The formatted traceback of `exc` and its chained causes, at most its last `max_lines` lines.

    The last lines are the ones kept because that is where the error was raised; JoobQ keeps the
    first 20, which for a deep stack shows only the worker's own frames. When lines are cut, a
    first line "... N earlier lines cut" says how many.
    """
    if max_lines < 1:
        raise ValueError(f"max_traceback_lines must be >= 1, got {max_lines}")
    lines = "".join(traceback.format_exception(exc)).splitlines()
    if len(lines) <= max_lines:
        return "\n".join(lines)
    cut = len(lines) - max_lines
    return "\n".join([f"... {cut} earlier lines cut", *lines[cut:]])


def error_details(
    exc: BaseException,
    *,
    jid: UUID | str,
    queue: str,
    job_type: str,
    attempt: int,
    worker_id: str,
    max_traceback_lines: int = 20,
) -> dict[str, Any]:
    """JoobQ's error details of a failed run of job `jid`, as a JSON-serializable dict whose
    strings PostgreSQL can store (each NUL and lone surrogate escaped, see store.storable).

    Keys: error_class, message (str(exc), at most 2000 characters), backtrace (see
    `format_backtrace`), cause (repr of `__cause__`, else of `__context__` unless the raise said
    `from None`, else None),
    error_type (`classify`), attempt (1-based run number), retry_count (attempt - 1), worker_id,
    queue, job_type, jid (str), host, pid, failed_at (UTC, ISO 8601). `attempt` must be >= 1.
    """
    if attempt < 1:
        raise ValueError(f"attempt must be >= 1, got {attempt}")
    cause = exc.__cause__
    if cause is None and not exc.__suppress_context__:
        cause = exc.__context__
    details = {
        "error_class": error_class_name(exc),
        "message": _cut_message(storable_text(_safe_str(exc))),
        "backtrace": format_backtrace(exc, max_traceback_lines),
        "cause": None if cause is None else _safe_repr(cause),
        "error_type": classify(exc),
        "attempt": attempt,
        "retry_count": attempt - 1,
        "worker_id": str(worker_id),
        "queue": str(queue),
        "job_type": str(job_type),
        "jid": str(jid),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "failed_at": datetime.now(UTC).isoformat(),
    }
    # Everything above may come from the exception, so from user data: a NUL or a lone
    # surrogate in it would make PostgreSQL refuse the whole acknowledgement batch.
    stored: dict[str, Any] = storable_value(details)
    return stored
