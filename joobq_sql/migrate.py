"""Run joobq-sql's Alembic migrations from Python, without an alembic.ini.

joobq's tables keep an Alembic history of their own: the version table is
`<schema>.joobq_alembic_version`, so it sits beside an application's own `alembic_version` and
neither history sees the other. Everything here builds its Alembic `Config` in code, pointing at
the revisions shipped with the package, so it works the same from a source checkout, an editable
install and an installed wheel.

    from joobq_sql.migrate import upgrade
    upgrade("postgresql://app@db/app")            # a URL, an Engine, or a Connection
    upgrade(connection, schema="tenant_jobs")     # inside the caller's own transaction

A `target` is a database URL (`postgresql://` is read as psycopg 3), an SQLAlchemy `Engine`, or a
`Connection`. With a URL or an Engine the work runs in a transaction of its own, committed on
success. With a Connection the caller owns the transaction: if the connection is already in one,
nothing is committed here; if not, Alembic begins and commits one, as it does for any connection.
"""

from __future__ import annotations

import contextlib
import io
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import NullPool

from .store.postgres.schema import (
    DEFAULT_SCHEMA,
    VERSION_TABLE,
    build_metadata,
    validate_schema_name,
)

__all__ = [
    "SCHEMA_ATTRIBUTE",
    "Target",
    "alembic_config",
    "autogenerate_options",
    "check_drift",
    "current",
    "downgrade",
    "head",
    "history",
    "migration_lock_key",
    "migrations_path",
    "normalize_url",
    "offline_sql",
    "upgrade",
]

#: The key of `Config.attributes` that carries the schema name to env.py and the revisions.
SCHEMA_ATTRIBUTE = "joobq_schema"

#: What the functions below accept as a database.
Target = str | URL | Engine | Connection

_PACKAGE_DIR = Path(__file__).resolve().parent

# Alembic publishes the running command through module-level proxies (alembic.context and
# alembic.op), so two commands running at once in one process, in two threads, would drive each
# other's migrations. Commands in this process take turns; other processes are kept apart by
# the advisory lock that env.py takes (see migration_lock_key).
_COMMAND_LOCK = threading.RLock()


def migrations_path() -> Path:
    """Return the directory holding env.py and versions/.

    An installed wheel carries the revisions inside the package, as `joobq_sql/_migrations`
    (pyproject's force-include). A source checkout or an editable install has them at the top of
    the repository, as `migrations/`.
    """
    for candidate in (_PACKAGE_DIR / "_migrations", _PACKAGE_DIR.parent / "migrations"):
        if (candidate / "env.py").is_file():
            return candidate
    raise FileNotFoundError(
        f"joobq-sql's migrations are missing: neither {_PACKAGE_DIR / '_migrations'} nor "
        f"{_PACKAGE_DIR.parent / 'migrations'} holds an env.py"
    )


def normalize_url(url: str | URL) -> str:
    """Return `url` as a string naming the psycopg 3 driver.

    `postgresql://` (and Heroku's `postgres://`) would make SQLAlchemy look for psycopg2, which
    joobq-sql does not depend on.
    """
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def migration_lock_key(schema: str) -> str:
    """Return the text whose `hashtext()` is the advisory lock env.py holds while migrating.

    env.py runs `SELECT pg_advisory_xact_lock(hashtext(<key>))` first in its transaction, so
    migrations of one schema never run at once (several application instances that start
    together may all call upgrade()). A DBA may take the same lock to hold migrations back.
    """
    return f"joobq-sql migrations {validate_schema_name(schema)}"


def autogenerate_options(schema: str, default_schema: str | None = None) -> dict[str, Any]:
    """Return the `context.configure` options that confine autogenerate to joobq's schema.

    `default_schema` is the connection's default schema (`dialect.default_schema_name`): Alembic
    names that schema None while comparing, so a joobq schema that happens to be the default one
    (say "public") must also accept None. The version table is never part of the comparison.
    Types and server defaults are compared too, since the revisions spell both out by hand.
    """
    validate_schema_name(schema)

    def include_name(name: str | None, type_: str, parent_names: Mapping[str, str | None]) -> bool:
        if type_ == "schema":
            return name == schema or (name is None and default_schema == schema)
        if type_ == "table":
            return name != VERSION_TABLE
        return True

    def include_object(
        obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
    ) -> bool:
        # include_name sees only reflected names; this hook sees every object, so the version
        # table stays out of the comparison whichever side it would come from.
        return not (type_ == "table" and name == VERSION_TABLE)

    return {
        "include_schemas": True,
        "include_name": include_name,
        "include_object": include_object,
        "compare_type": True,
        "compare_server_default": True,
    }


def alembic_config(target: Target | None = None, *, schema: str = DEFAULT_SCHEMA) -> Config:
    """Return an Alembic `Config` for joobq's migrations, built in code (no alembic.ini).

    An Engine or Connection goes to `attributes["connection"]` and a URL to
    `attributes["url"]`, where env.py looks for them; with neither, env.py falls back to
    `-x url=`, then JOOBQ_DATABASE_URL, then DATABASE_URL. The result also works with
    `alembic.command` directly, e.g. `command.stamp(alembic_config(url), "head")`.
    """
    validate_schema_name(schema)
    config = Config()
    # Config values go through configparser interpolation, so a literal '%' must be doubled.
    config.set_main_option("script_location", str(migrations_path()).replace("%", "%%"))
    config.attributes[SCHEMA_ATTRIBUTE] = schema
    if isinstance(target, Connection | Engine):
        config.attributes["connection"] = target
    elif target is not None:
        config.attributes["url"] = normalize_url(target)
    return config


@contextlib.contextmanager
def _connection(target: Target) -> Iterator[Connection]:
    """Yield a Connection for `target`; URLs and Engines get a transaction that commits on exit.

    Alembic sees a connection already in a transaction as an external one and leaves the commit
    to its owner, so the `begin()` here is what makes an upgrade through a URL or Engine stick.
    """
    if isinstance(target, Connection):
        yield target
    elif isinstance(target, Engine):
        with target.begin() as connection:
            yield connection
    else:
        # A one-off engine: NullPool so that nothing stays connected once we return.
        engine = create_engine(normalize_url(target), poolclass=NullPool)
        try:
            with engine.begin() as connection:
                yield connection
        finally:
            engine.dispose()


@contextlib.contextmanager
def _alembic_command() -> Iterator[None]:
    """Hold the process's turn to run an Alembic command, and restore Alembic's proxies after it.

    Alembic exposes the running command through two module-level proxies, `alembic.context` and
    `alembic.op`, and each command removes its proxy when it ends. Called from inside an
    application's own env.py (as the README suggests), our command would tear down the proxy of
    the application's command still running around it, whose own exit then fails. Saving and
    restoring the two module namespaces lets our run nest inside theirs.
    """
    from alembic import context as context_module
    from alembic import op as op_module

    with _COMMAND_LOCK:
        saved = [(module, dict(vars(module))) for module in (context_module, op_module)]
        try:
            yield
        finally:
            for module, namespace in saved:
                vars(module).update(namespace)


def upgrade(target: Target, *, schema: str = DEFAULT_SCHEMA, revision: str = "head") -> None:
    """Upgrade joobq's tables in `schema` to `revision` (by default the newest)."""
    validate_schema_name(schema)
    with _connection(target) as connection, _alembic_command():
        command.upgrade(alembic_config(connection, schema=schema), revision)


def downgrade(target: Target, *, schema: str = DEFAULT_SCHEMA, revision: str = "base") -> None:
    """Downgrade joobq's tables in `schema` to `revision` (by default: drop them all)."""
    validate_schema_name(schema)
    with _connection(target) as connection, _alembic_command():
        command.downgrade(alembic_config(connection, schema=schema), revision)


def current(target: Target, *, schema: str = DEFAULT_SCHEMA) -> str | None:
    """Return the revision the database is at in `schema`, or None if never migrated."""
    validate_schema_name(schema)
    with _connection(target) as connection:
        context = MigrationContext.configure(
            connection,
            opts={"version_table": VERSION_TABLE, "version_table_schema": schema},
        )
        return context.get_current_revision()


def _script_directory() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def history() -> list[str]:
    """Return the revision ids shipped with this package, oldest first."""
    return [script.revision for script in reversed(list(_script_directory().walk_revisions()))]


def head() -> str:
    """Return the newest revision id shipped with this package (what `upgrade` goes to)."""
    revision = _script_directory().get_current_head()
    if revision is None:  # only possible if versions/ were emptied
        raise RuntimeError(f"no revisions found under {migrations_path() / 'versions'}")
    return revision


def offline_sql(
    *,
    schema: str = DEFAULT_SCHEMA,
    from_revision: str | None = None,
    to_revision: str = "head",
) -> str:
    """Return the SQL script that upgrades `schema` from `from_revision` to `to_revision`.

    This is what `alembic upgrade --sql` prints, for a DBA to review and run; it needs no
    database. `from_revision=None` starts from an empty database.
    """
    validate_schema_name(schema)
    buffer = io.StringIO()
    config = alembic_config(schema=schema)
    config.output_buffer = buffer
    span = to_revision if from_revision is None else f"{from_revision}:{to_revision}"
    with _alembic_command():
        command.upgrade(config, span, sql=True)
    return buffer.getvalue()


def check_drift(target: Target, *, schema: str = DEFAULT_SCHEMA) -> list[Any]:
    """Compare the database's `schema` with `build_metadata(schema)`; return the differences.

    An empty list means the migrated tables match the MetaData. Each entry is one of Alembic's
    diff tuples, e.g. `("remove_column", None, "jobs", Column(...))`. Like any autogenerate
    comparison it sees tables, columns, types, nullability, server defaults and indexes, but not
    CHECK constraints or storage parameters.
    """
    validate_schema_name(schema)
    with _connection(target) as connection:
        options: dict[str, Any] = autogenerate_options(
            schema, connection.dialect.default_schema_name
        )
        options.update(version_table=VERSION_TABLE, version_table_schema=schema)
        context = MigrationContext.configure(connection, opts=options)
        return list(compare_metadata(context, build_metadata(schema)))
