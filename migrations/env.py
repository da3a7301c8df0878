"""Alembic environment for joobq-sql's own tables.

Where things come from, first match wins:

- schema: `config.attributes["joobq_schema"]`, `-x schema=...`, $JOOBQ_SCHEMA, "joobq";
- database (online mode): `config.attributes["connection"]` (a Connection or Engine, so that an
  application can run these migrations on its own connection), `config.attributes["url"]`,
  `-x url=...`, $JOOBQ_DATABASE_URL, $DATABASE_URL.

The version table is `<schema>.joobq_alembic_version`, kept apart from an application's own
`alembic_version` so that the two histories never meet.

    alembic -c alembic.ini -x url=postgresql://app@db/app upgrade head
    alembic -c alembic.ini -x schema=tenant_jobs upgrade head --sql > joobq.sql
"""

from __future__ import annotations

import os
from logging.config import fileConfig

from alembic import context
from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.pool import NullPool

from joobq_sql.errors import ConfigurationError
from joobq_sql.migrate import (
    SCHEMA_ATTRIBUTE,
    autogenerate_options,
    migration_lock_key,
    normalize_url,
)
from joobq_sql.store.postgres.schema import (
    DEFAULT_SCHEMA,
    VERSION_TABLE,
    build_metadata,
    validate_schema_name,
)

config = context.config

# Only the alembic CLI has an ini file with logging sections. A Config built in code (by
# joobq_sql.migrate or by an application) has none, and the application's logging stays as is.
if config.config_file_name is not None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)

x_arguments: dict[str, str] = context.get_x_argument(as_dictionary=True)


def _resolve_schema() -> str:
    schema = (
        config.attributes.get(SCHEMA_ATTRIBUTE)
        or x_arguments.get("schema")
        or os.environ.get("JOOBQ_SCHEMA")
        or DEFAULT_SCHEMA
    )
    return validate_schema_name(schema)


SCHEMA = _resolve_schema()
# The revisions read the schema from here (op.get_context().config.attributes), so every way
# of naming it above reaches them, including -x and the environment.
config.attributes[SCHEMA_ATTRIBUTE] = SCHEMA

target_metadata = build_metadata(SCHEMA)


def _resolve_url() -> str:
    url = (
        config.attributes.get("url")
        or x_arguments.get("url")
        or os.environ.get("JOOBQ_DATABASE_URL")
        or os.environ.get("DATABASE_URL")
    )
    if not url:
        raise ConfigurationError(
            "no database to migrate: set JOOBQ_DATABASE_URL (or DATABASE_URL), or pass "
            "-x url=postgresql://user@host/dbname"
        )
    return normalize_url(url)


def _ensure_schema(connection: Connection) -> None:
    """Create the schema if it is missing; Alembic creates its version table in it.

    It checks first rather than relying on CREATE SCHEMA IF NOT EXISTS alone, because PostgreSQL
    checks the CREATE privilege on the database before IF NOT EXISTS: a role that owns a schema a
    DBA made for it, without that privilege, could not migrate.
    """
    exists = connection.execute(
        text("SELECT 1 FROM pg_namespace WHERE nspname = :schema"), {"schema": SCHEMA}
    ).first()
    if exists is None:
        # The name passed validate_schema_name (no quotes possible), so quoting it is safe.
        connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{SCHEMA}"'))


def run_migrations_offline() -> None:
    """Print the SQL script instead of running it (`alembic upgrade head --sql`).

    No database is needed: the dialect is named, not discovered.
    """
    context.configure(
        dialect_name="postgresql",
        literal_binds=True,
        target_metadata=target_metadata,
        version_table=VERSION_TABLE,
        version_table_schema=SCHEMA,
    )
    with context.begin_transaction():
        # Alembic's CREATE TABLE of the version table comes first in the script, so the
        # schema must exist before it.
        context.execute(f'CREATE SCHEMA IF NOT EXISTS "{SCHEMA}"')
        context.run_migrations()


def _run_on(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        version_table=VERSION_TABLE,
        version_table_schema=SCHEMA,
        **autogenerate_options(SCHEMA, connection.dialect.default_schema_name),
    )
    with context.begin_transaction():
        # Serialize migrators of this schema: several application instances often start, and
        # upgrade, at once. A transaction-level lock (released at commit) also works behind
        # PgBouncer in transaction mode. Alembic reads the version table only after it.
        connection.execute(
            text("SELECT pg_advisory_xact_lock(hashtext(:key))"),
            {"key": migration_lock_key(SCHEMA)},
        )
        _ensure_schema(connection)
        context.run_migrations()


def run_migrations_online() -> None:
    """Run the migrations on the given connection, or on a connection of our own."""
    given = config.attributes.get("connection")
    if isinstance(given, Connection):
        _run_on(given)
        return
    if isinstance(given, Engine):
        with given.connect() as connection:
            _run_on(connection)
        return
    if given is not None:
        raise ConfigurationError(
            f'config.attributes["connection"] must be an SQLAlchemy Connection or Engine, '
            f"not {type(given).__name__}"
        )
    # A one-off engine: NullPool so that nothing stays connected after the run.
    engine = create_engine(_resolve_url(), poolclass=NullPool)
    try:
        with engine.connect() as connection:
            _run_on(connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
