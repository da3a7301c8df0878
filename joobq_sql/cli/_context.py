"""What every command shares: where the database is, the store, and how to print.

The database URL is `--database-url`, else JOOBQ_DATABASE_URL, else DATABASE_URL, else the
embedded PostgreSQL, which is started, created and migrated on demand; a line on stderr then
says so, and where its data lives. A real URL is never migrated behind the operator's back:
commands that need the tables check the schema's revision first and say to run `migrate`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import click

from ._errors import CliError, not_migrated

if TYPE_CHECKING:
    from ..store.postgres.store import PostgresStore

EMBEDDED = "embedded"


@dataclass
class CliContext:
    """The global options, and the store built from them on first use."""

    database_url: str | None = None
    schema: str = "joobq"
    json: bool = False
    traceback: bool = False
    _url: str | None = field(default=None, repr=False)
    _source: str | None = None
    _store: PostgresStore | None = field(default=None, repr=False)

    # -- where the database is ---------------------------------------------------------------

    @property
    def source(self) -> str:
        """What chose the database: an option or variable name, or EMBEDDED."""
        if self._source is None:
            if self.database_url:
                self._source = "--database-url"
            elif os.environ.get("JOOBQ_DATABASE_URL", "").strip():
                self._source = "JOOBQ_DATABASE_URL"
            elif os.environ.get("DATABASE_URL", "").strip():
                self._source = "DATABASE_URL"
            else:
                self._source = EMBEDDED
        return self._source

    @property
    def embedded(self) -> bool:
        return self.source == EMBEDDED

    def advice_target(self) -> str:
        """Where an operator fixes the URL, as advice text names it."""
        if self.embedded:
            return "the embedded server (joobq-sql db status), or set JOOBQ_DATABASE_URL"
        return self.source

    def url(self, *, migrate: bool = True) -> str:
        """The database URL. The embedded server is started (and, with `migrate`, migrated)."""
        if self._url is None:
            if self.embedded:
                self._url = start_embedded(schema=self.schema, migrate=migrate)
            elif self.source == "--database-url":
                self._url = self.database_url
            else:
                self._url = os.environ[self.source].strip()
        assert self._url is not None
        return self._url

    def where(self) -> str:
        """The server as `host:port` or `socket DIR`, for error messages (no credentials)."""
        from sqlalchemy.engine import make_url

        if self._url is None and self.embedded:
            return "the embedded server"
        try:
            parsed = make_url(self._url or self.url(migrate=False))
        except Exception:
            return "the configured URL"
        host = parsed.host or parsed.query.get("host")
        if isinstance(host, tuple):
            host = host[0]
        if not host:
            return "the default local socket"
        if host.startswith("/"):
            return f"socket {host}"
        return f"{host}:{parsed.port or 5432}"

    # -- the store ---------------------------------------------------------------------------

    def store(self) -> PostgresStore:
        """The store on the migrated database (the embedded one is migrated here)."""
        if self._store is None:
            from ..store.postgres.store import PostgresStore

            store = PostgresStore(self.url(), schema=self.schema, pool_size=2)
            try:
                if not self.embedded:
                    check_migrated(store.engine, self.schema)
            except BaseException:
                store.close()
                raise
            self._store = store
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None


def start_embedded(*, schema: str, migrate: bool) -> str:
    """Start the embedded server (and its joobq database); say so on stderr; return its URL."""
    from ..embedded import data_directory, ensure_database

    click.echo(f"using the embedded PostgreSQL (data in {data_directory()})", err=True)
    url = ensure_database(migrate=False)
    if migrate:
        from ..migrate import upgrade

        upgrade(url, schema=schema)
    return url


def check_migrated(target: Any, schema: str) -> None:
    """Raise a CliError unless `schema` is at the revision this joobq-sql ships as head."""
    from ..migrate import current, head, history

    at = current(target, schema=schema)
    if at is None:
        raise not_migrated(schema, f'no joobq tables in schema "{schema}"')
    newest = head()
    if at == newest:
        return
    if at in history():
        raise not_migrated(schema, f"it is at revision {at}, this joobq-sql needs {newest}")
    raise CliError(
        f"the database is at revision {at}, which this joobq-sql does not know (its newest "
        f"is {newest}); upgrade joobq-sql"
    )


pass_cli = click.make_pass_decorator(CliContext, ensure=True)


def queue_name(_ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A queue a command writes under (enqueue, pause), checked and NFC-normalised as the store
    does it, so a bad one is bad usage (exit 2)."""
    return _checked_name(param, value, kind="queue", existing=False)


def existing_queue_name(
    _ctx: click.Context, param: click.Parameter, value: str | None
) -> str | None:
    """A queue a command only looks rows up by (a filter, resume): a name that rows written
    before the visible-name rule hold, such as 'hr ', is taken as given."""
    return _checked_name(param, value, kind="queue", existing=True)


def job_type_name(_ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A job type a command writes (enqueue JOB_TYPE), checked and NFC-normalised."""
    return _checked_name(param, value, kind="job_type", existing=False)


def existing_job_type(_ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A job type a command only looks rows up by (--type)."""
    return _checked_name(param, value, kind="job_type", existing=True)


def _checked_name(
    param: click.Parameter, value: str | None, *, kind: str, existing: bool
) -> str | None:
    from .. import _validation

    if value is None:
        return None
    try:
        if kind == "job_type":
            return _validation.job_type(value, existing=existing)
        return _validation.queue_name(value, existing=existing)
    except (TypeError, ValueError) as exc:
        raise click.BadParameter(str(exc), param=param) from None


def _set_json(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        ctx.ensure_object(CliContext).json = True


#: `--json` after a command works as before it: `joobq-sql stats --json`.
json_option = click.option(
    "--json",
    is_flag=True,
    expose_value=False,
    is_eager=False,
    callback=_set_json,
    help="Print machine-readable JSON instead of a table.",
)
