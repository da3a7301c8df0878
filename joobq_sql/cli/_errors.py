"""Turning failures into one line on stderr that says what to do, and the exit codes.

Exit codes: 0 success, 1 failure (database, data, a job that cannot be found), 2 bad usage (an
unknown option, a malformed argument; click's UsageError already exits 2). Nothing known ever
prints a traceback; an unexpected exception prints one line too, unless --traceback is given.
"""

from __future__ import annotations

import re
from typing import IO, Any

import click

from ..errors import JoobQError, SchemaNotMigratedError
from ..settings import mask_password

FAILURE = 1
USAGE = 2

_PASSWORD_FAILED = re.compile(r'password authentication failed for user "([^"]*)"')
_NO_DATABASE = re.compile(r'database "([^"]*)" does not exist')
_NO_ROLE = re.compile(r'role "([^"]*)" does not exist')
#: libpq's refusals of the connection string itself, before it reaches any server: a bad
#: option value (sslmode=bogus), an unknown option, a malformed URI.
_BAD_CONNINFO = re.compile(
    r'invalid \S+ value: "[^"]*"|invalid connection option "[^"]*"'
    r'|invalid URI query parameter: "[^"]*"|invalid integer value "[^"]*" for connection option'
    r'|invalid (?:port number|percent-encoded token)|missing "=" after'
    r"|unterminated quoted string in connection info string"
    r"|unexpected spaces found in|bad value for \S+: '[^']*'"
)


class CliError(click.ClickException):
    """A failure reported as ``error: <message>`` on one line, with its exit code."""

    exit_code = FAILURE

    def __init__(self, message: str) -> None:
        # A message may quote a URL or a driver error: never let a password through.
        super().__init__(one_line(mask_password(message)))

    def show(self, file: IO[Any] | None = None) -> None:
        from ._output import echo  # a message may quote the database's text: made safe

        echo(f"error: {self.format_message()}", file=file, err=file is None)


def one_line(text: str) -> str:
    """The first line of `text`, stripped: driver messages carry libpq's hints on more lines."""
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return lines[0] if lines else ""


def not_migrated(schema: str, detail: str = "") -> CliError:
    flag = "" if schema == "joobq" else f" --schema {schema}"
    why = f" ({detail})" if detail else ""
    return CliError(f"the database is not migrated{why}; run: joobq-sql{flag} migrate")


def translate(exc: BaseException, *, where: str, source: str, schema: str) -> CliError | None:
    """The CliError for a known failure, or None for an unexpected one.

    `where` is the server as host:port (or socket), `source` what set the URL (named in the
    advice), `schema` the joobq schema in use.
    """
    if isinstance(exc, CliError):
        return exc
    if isinstance(exc, SchemaNotMigratedError):
        return not_migrated(schema)
    if isinstance(exc, JoobQError):  # ConfigurationError, JobDecodeError, ...: already specific
        return CliError(str(exc))
    if _is_url_argument_error(exc):
        # SQLAlchemy's dialect refused a URL argument (e.g. ?port=abc) before connecting.
        return CliError(f"the database URL in {source} is not valid ({one_line(str(exc))}); fix it")
    driver_error = _driver_error(exc)
    if driver_error is not None:
        return _database_error(driver_error, where=where, source=source)
    return None


def _is_url_argument_error(exc: BaseException) -> bool:
    import sqlalchemy.exc

    return isinstance(exc, sqlalchemy.exc.ArgumentError)


def _driver_error(exc: BaseException) -> BaseException | None:
    """The psycopg error inside `exc` (SQLAlchemy wraps it as `.orig`), or None."""
    import psycopg

    original = getattr(exc, "orig", None)
    if isinstance(original, psycopg.Error):
        return original
    return exc if isinstance(exc, psycopg.Error) else None


def _database_error(exc: BaseException, *, where: str, source: str) -> CliError:
    import psycopg

    message = str(exc)
    if match := _PASSWORD_FAILED.search(message):
        return CliError(
            f'password authentication failed for user "{match[1]}"; check the password in {source}'
        )
    if "no password supplied" in message:
        return CliError(f"the server at {where} asks for a password; add it to {source}")
    if match := _NO_DATABASE.search(message):
        return CliError(
            f'database "{match[1]}" does not exist on {where}; create it '
            f"(createdb {match[1]}) or fix {source}"
        )
    if match := _NO_ROLE.search(message):
        return CliError(f'role "{match[1]}" does not exist on {where}; fix the user in {source}')
    if getattr(exc, "sqlstate", None) is None and (match := _BAD_CONNINFO.search(message)):
        # The client refused the URL before connecting anywhere (no server's SQLSTATE):
        # whether a server runs there is moot.
        return CliError(f"the database URL in {source} is not valid ({match[0]}); fix it")
    if isinstance(exc, psycopg.OperationalError):
        return CliError(
            f"cannot connect to PostgreSQL at {where} ({_reason(message)}); "
            f"is it running? check {source}"
        )
    return CliError(f"the database refused the command: {one_line(message)}")


def _reason(message: str) -> str:
    """libpq's reason in a connection error, e.g. 'connection refused'."""
    text = one_line(message)
    if "failed to resolve host" in text:
        return "unknown host"
    for known in ("Connection refused", "No such file or directory", "timeout expired"):
        if known in text:
            return "no server socket there" if known.startswith("No such") else known.lower()
    return text.rsplit("failed: ", 1)[-1]
