"""The Alembic migrations, against a real PostgreSQL: each test gets an empty database."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import CheckConstraint, create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from joobq_sql import migrate
from joobq_sql.store.postgres.schema import (
    JOBS_STORAGE_PARAMETERS,
    VERSION_TABLE,
    build_metadata,
)
from tests.conftest import libpq_url

REPO_ROOT = Path(__file__).resolve().parents[1]
JOOBQ_TABLES = {
    "jobs",
    "queue_counters",
    "queue_pauses",
    "schedule_ticks",
    "workers",
    "queue_throughput",
}
HEAD = "0005"
PARTIAL_INDEXES = {
    "jobs_claim_idx",
    "jobs_lease_idx",
    "jobs_dead_purge_idx",
    "jobs_completed_prune_idx",
}
# Nothing listens on port 9 (discard): a function that touched the database would fail with a
# connection error, not the ValueError the tests expect.
UNREACHABLE_URL = "postgresql+psycopg://nobody@127.0.0.1:9/nowhere"


@pytest.fixture
def pg(fresh_database_url: str) -> Iterator[psycopg.Connection]:
    """An autocommit connection to the test's (initially empty) database, for looking around."""
    with psycopg.connect(libpq_url(fresh_database_url), autocommit=True) as conn:
        yield conn


def relations(pg: psycopg.Connection, schema: str, kind: str) -> set[str]:
    """Names of the relations of one kind ('r' tables, 'i' indexes) in `schema`."""
    rows = pg.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relkind = %s",
        (schema, kind),
    ).fetchall()
    return {name for (name,) in rows}


def schema_exists(pg: psycopg.Connection, schema: str) -> bool:
    row = pg.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone()
    return row is not None


def version_rows(pg: psycopg.Connection, schema: str) -> list[str]:
    rows = pg.execute(f'SELECT version_num FROM "{schema}".{VERSION_TABLE}').fetchall()
    return [version for (version,) in rows]


def partial_index_predicates(pg: psycopg.Connection, schema: str) -> dict[str, str | None]:
    rows = pg.execute(
        "SELECT c.relname, pg_get_expr(i.indpred, i.indrelid) FROM pg_index i "
        "JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s",
        (schema,),
    ).fetchall()
    return dict(rows)


def test_upgrade_creates_tables_partial_indexes_and_version_table(
    fresh_database_url: str, pg: psycopg.Connection
) -> None:
    assert migrate.current(fresh_database_url) is None

    migrate.upgrade(fresh_database_url)

    assert relations(pg, "joobq", "r") == JOOBQ_TABLES | {VERSION_TABLE}
    predicates = partial_index_predicates(pg, "joobq")
    assert predicates.keys() >= PARTIAL_INDEXES
    for name in PARTIAL_INDEXES:
        assert predicates[name] is not None, f"{name} should be a partial index"
    assert "'enqueued'" in predicates["jobs_claim_idx"]
    assert "'running'" in predicates["jobs_lease_idx"]
    assert version_rows(pg, "joobq") == [HEAD]
    assert migrate.current(fresh_database_url) == HEAD == migrate.head()
    # The application's default version table is not ours to create.
    assert not schema_exists(pg, "public") or "alembic_version" not in relations(pg, "public", "r")


def test_jobs_table_has_the_storage_parameters(
    fresh_database_url: str, pg: psycopg.Connection
) -> None:
    migrate.upgrade(fresh_database_url)

    row = pg.execute(
        "SELECT reloptions FROM pg_class WHERE oid = 'joobq.jobs'::regclass"
    ).fetchone()
    assert row is not None and row[0] is not None
    reloptions: list[str] = row[0]
    options = dict(option.split("=", 1) for option in reloptions)
    # Compared with schema.py's dict: changing it without a new revision fails here.
    assert options == JOBS_STORAGE_PARAMETERS


def test_check_constraints_match_the_metadata(
    fresh_database_url: str, pg: psycopg.Connection
) -> None:
    """Autogenerate does not compare CHECK constraints, so compare at least their names."""
    migrate.upgrade(fresh_database_url)

    rows = pg.execute(
        "SELECT conname FROM pg_constraint "
        "WHERE contype = 'c' AND conrelid = 'joobq.jobs'::regclass"
    ).fetchall()
    expected = {
        constraint.name
        for constraint in build_metadata().tables["joobq.jobs"].constraints
        if isinstance(constraint, CheckConstraint)
    }
    assert {name for (name,) in rows} == expected


def test_upgrade_downgrade_upgrade(fresh_database_url: str, pg: psycopg.Connection) -> None:
    migrate.upgrade(fresh_database_url)
    migrate.downgrade(fresh_database_url)

    # Only the (now empty) version table stays: Alembic keeps it after a downgrade to base, and
    # the schema that holds it stays with it.
    assert relations(pg, "joobq", "r") == {VERSION_TABLE}
    assert relations(pg, "joobq", "i") == {f"{VERSION_TABLE}_pkc"}
    assert version_rows(pg, "joobq") == []
    assert migrate.current(fresh_database_url) is None

    migrate.upgrade(fresh_database_url)
    assert relations(pg, "joobq", "r") == JOOBQ_TABLES | {VERSION_TABLE}
    assert migrate.current(fresh_database_url) == HEAD
    assert migrate.check_drift(fresh_database_url) == []


def test_no_drift_after_upgrade(fresh_database_url: str) -> None:
    migrate.upgrade(fresh_database_url)

    assert migrate.check_drift(fresh_database_url) == []


def test_drift_is_detected_when_a_column_is_dropped(
    fresh_database_url: str, pg: psycopg.Connection
) -> None:
    migrate.upgrade(fresh_database_url)
    pg.execute("ALTER TABLE joobq.jobs DROP COLUMN dead_reason")
    pg.execute("DROP INDEX joobq.jobs_lease_idx")

    diffs = migrate.check_drift(fresh_database_url)

    flat = [diff for entry in diffs for diff in (entry if isinstance(entry, list) else [entry])]
    kinds = {(diff[0], getattr(diff[-1], "name", None)) for diff in flat}
    assert ("add_column", "dead_reason") in kinds
    assert ("add_index", "jobs_lease_idx") in kinds


def test_drift_is_detected_when_a_table_is_missing(
    fresh_database_url: str, pg: psycopg.Connection
) -> None:
    migrate.upgrade(fresh_database_url)
    pg.execute("DROP TABLE joobq.queue_counters")

    diffs = migrate.check_drift(fresh_database_url)

    assert [(diff[0], diff[1].name) for diff in diffs] == [("add_table", "queue_counters")]


def test_custom_schema(fresh_database_url: str, pg: psycopg.Connection) -> None:
    migrate.upgrade(fresh_database_url, schema="tenant_jobs")

    assert relations(pg, "tenant_jobs", "r") == JOOBQ_TABLES | {VERSION_TABLE}
    assert relations(pg, "tenant_jobs", "i") >= PARTIAL_INDEXES
    assert version_rows(pg, "tenant_jobs") == [HEAD]
    assert not schema_exists(pg, "joobq")
    assert migrate.current(fresh_database_url, schema="tenant_jobs") == HEAD
    assert migrate.current(fresh_database_url) is None  # the default schema's history is empty
    assert migrate.check_drift(fresh_database_url, schema="tenant_jobs") == []

    migrate.downgrade(fresh_database_url, schema="tenant_jobs")
    assert relations(pg, "tenant_jobs", "r") == {VERSION_TABLE}


def test_two_schemas_side_by_side(fresh_database_url: str, pg: psycopg.Connection) -> None:
    migrate.upgrade(fresh_database_url)
    migrate.upgrade(fresh_database_url, schema="tenant_jobs")
    migrate.downgrade(fresh_database_url)

    assert relations(pg, "joobq", "r") == {VERSION_TABLE}
    assert relations(pg, "tenant_jobs", "r") == JOOBQ_TABLES | {VERSION_TABLE}


@pytest.mark.parametrize("schema", ['x"; drop', "Upper", "", "1abc", "a-b", "a" * 64])
@pytest.mark.parametrize(
    "call",
    [
        lambda schema: migrate.upgrade(UNREACHABLE_URL, schema=schema),
        lambda schema: migrate.downgrade(UNREACHABLE_URL, schema=schema),
        lambda schema: migrate.current(UNREACHABLE_URL, schema=schema),
        lambda schema: migrate.check_drift(UNREACHABLE_URL, schema=schema),
        lambda schema: migrate.offline_sql(schema=schema),
        lambda schema: migrate.alembic_config(UNREACHABLE_URL, schema=schema),
    ],
    ids=["upgrade", "downgrade", "current", "check_drift", "offline_sql", "alembic_config"],
)
def test_invalid_schema_name_is_refused_before_touching_the_database(call, schema: str) -> None:
    with pytest.raises(ValueError, match="schema"):
        call(schema)


def test_offline_sql() -> None:
    sql = migrate.offline_sql(schema="tenant_jobs")

    assert "CREATE TABLE tenant_jobs.jobs" in sql
    assert 'CREATE SCHEMA IF NOT EXISTS "tenant_jobs"' in sql
    assert f"CREATE TABLE tenant_jobs.{VERSION_TABLE}" in sql
    assert "CREATE INDEX jobs_claim_idx" in sql
    assert "fillfactor = 80" in sql
    assert "INSERT INTO tenant_jobs.joobq_alembic_version" in sql
    assert sql.rstrip().endswith("COMMIT;")
    assert "joobq." not in sql  # nothing lands in the default schema

    assert "CREATE TABLE joobq.jobs" in migrate.offline_sql()
    # From head to head there is nothing to do.
    assert "CREATE TABLE" not in migrate.offline_sql(from_revision=HEAD)
    assert "CREATE TABLE joobq.queue_pauses" in migrate.offline_sql(from_revision="0001")


def test_offline_sql_runs_on_a_database(fresh_database_url: str, pg: psycopg.Connection) -> None:
    """What a DBA runs by hand produces the same database as upgrade()."""
    pg.execute(migrate.offline_sql())

    assert relations(pg, "joobq", "r") == JOOBQ_TABLES | {VERSION_TABLE}
    assert migrate.current(fresh_database_url) == HEAD
    assert migrate.check_drift(fresh_database_url) == []


def test_upgrade_through_an_engine_commits(fresh_database_url: str, pg: psycopg.Connection) -> None:
    engine = create_engine(fresh_database_url, poolclass=NullPool)
    try:
        migrate.upgrade(engine)
        assert migrate.current(engine) == HEAD
    finally:
        engine.dispose()

    assert version_rows(pg, "joobq") == [HEAD]  # seen from another connection


def test_upgrade_on_a_connection_stays_in_the_callers_transaction(
    fresh_database_url: str, pg: psycopg.Connection
) -> None:
    engine = create_engine(fresh_database_url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            transaction = connection.begin()
            migrate.upgrade(connection)
            assert migrate.current(connection) == HEAD
            transaction.rollback()  # the caller decides: nothing was committed behind its back
        assert not schema_exists(pg, "joobq")

        with engine.connect() as connection, connection.begin():
            migrate.upgrade(connection, schema="tenant_jobs")
    finally:
        engine.dispose()
    assert version_rows(pg, "tenant_jobs") == [HEAD]


def test_concurrent_upgrades_in_one_process(
    fresh_database_url: str, pg: psycopg.Connection
) -> None:
    """Alembic's module-level proxies are not thread-safe; upgrade() takes turns in a process."""
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def run() -> None:
        try:
            start.wait(timeout=30)
            migrate.upgrade(fresh_database_url)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert errors == []
    assert version_rows(pg, "joobq") == [HEAD]


def test_concurrent_upgrades_from_several_processes(
    fresh_database_url: str, pg: psycopg.Connection
) -> None:
    """Application instances that start together all upgrade: one does the work, none fails.

    The test holds the migration lock until every process waits on it, then lets them all go at
    once, the worst case for a race on CREATE SCHEMA or the version table.
    """
    holder = psycopg.connect(libpq_url(fresh_database_url))  # not autocommit: holds a transaction
    holder.execute(
        "SELECT pg_advisory_xact_lock(hashtext(%s))", (migrate.migration_lock_key("joobq"),)
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    script = "import sys; from joobq_sql.migrate import upgrade; upgrade(sys.argv[1])"
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", script, fresh_database_url],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    try:
        deadline = time.monotonic() + 60
        while True:
            (waiting,) = pg.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            ).fetchone() or (0,)
            if waiting == len(processes):
                break
            exited = [process for process in processes if process.poll() is not None]
            assert not exited, exited[0].communicate()[1]
            assert time.monotonic() < deadline, f"only {waiting} processes wait on the lock"
            time.sleep(0.05)
        holder.rollback()  # releases the lock: all four go at once
        for process in processes:
            _, stderr = process.communicate(timeout=120)
            assert process.returncode == 0, stderr
    finally:
        holder.close()
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.communicate()

    assert version_rows(pg, "joobq") == [HEAD]
    assert migrate.check_drift(fresh_database_url) == []


def test_a_role_that_only_owns_its_schema_can_upgrade(
    admin_url: str, fresh_database_url: str, pg: psycopg.Connection
) -> None:
    """A DBA made the schema for the application's role, which may not CREATE in the database."""
    role = f"joobq_role_{uuid.uuid4().hex[:8]}"
    password = uuid.uuid4().hex
    try:
        pg.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
    except psycopg.errors.InsufficientPrivilege:
        pytest.skip("the test server's user may not create roles")
    try:
        database = make_url(fresh_database_url).database
        pg.execute(f'REVOKE CREATE ON DATABASE "{database}" FROM PUBLIC')
        pg.execute(f"CREATE SCHEMA joobq AUTHORIZATION {role}")
        role_url = make_url(fresh_database_url).set(username=role, password=password)

        migrate.upgrade(role_url)

        assert migrate.current(role_url) == HEAD
        assert relations(pg, "joobq", "r") == JOOBQ_TABLES | {VERSION_TABLE}
    finally:
        pg.execute(f"DROP OWNED BY {role}")
        pg.execute(f"DROP ROLE {role}")


def test_an_application_env_py_can_run_our_migrations(
    fresh_database_url: str, pg: psycopg.Connection, tmp_path: Path
) -> None:
    """The README's recipe: an application's own Alembic env.py upgrades joobq too."""
    (tmp_path / "versions").mkdir()
    (tmp_path / "script.py.mako").write_text((REPO_ROOT / "migrations/script.py.mako").read_text())
    (tmp_path / "versions" / "a1_app_table.py").write_text(
        textwrap.dedent(
            """
            import sqlalchemy as sa
            from alembic import op

            revision = "a1"
            down_revision = None
            branch_labels = None
            depends_on = None

            def upgrade():
                op.create_table("app_things", sa.Column("id", sa.Integer, primary_key=True))

            def downgrade():
                op.drop_table("app_things")
            """
        )
    )
    (tmp_path / "env.py").write_text(
        textwrap.dedent(
            """
            from alembic import context
            from sqlalchemy import create_engine
            from sqlalchemy.pool import NullPool

            import joobq_sql.migrate

            config = context.config
            engine = create_engine(config.get_main_option("sqlalchemy.url"), poolclass=NullPool)
            with engine.connect() as connection:
                context.configure(
                    connection=connection,
                    target_metadata=None,
                    # joobq's tables are not the application's to autogenerate.
                    include_name=lambda name, type_, parents: (
                        type_ != "schema" or name != "joobq"
                    ),
                )
                with context.begin_transaction():
                    context.run_migrations()
                    joobq_sql.migrate.upgrade(connection)
            engine.dispose()
            """
        )
    )
    config = Config()
    config.set_main_option("script_location", str(tmp_path))
    config.set_main_option("sqlalchemy.url", fresh_database_url.replace("%", "%%"))

    command.upgrade(config, "head")

    assert relations(pg, "public", "r") == {"app_things", "alembic_version"}
    assert relations(pg, "joobq", "r") == JOOBQ_TABLES | {VERSION_TABLE}
    assert pg.execute("SELECT version_num FROM public.alembic_version").fetchall() == [("a1",)]
    assert version_rows(pg, "joobq") == [HEAD]


def _alembic_cli(*arguments: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run the alembic command line from the repository's top level, as a developer would."""
    base = {
        key: value
        for key, value in os.environ.items()
        if key not in ("JOOBQ_DATABASE_URL", "DATABASE_URL", "JOOBQ_SCHEMA")
    }
    return subprocess.run(
        [sys.executable, "-m", "alembic", "-c", "alembic.ini", *arguments],
        cwd=REPO_ROOT,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_alembic_cli_upgrade(fresh_database_url: str, pg: psycopg.Connection) -> None:
    # A plain postgresql:// URL, as most platforms hand it out; env.py picks psycopg 3 for it.
    plain_url = make_url(fresh_database_url).set(drivername="postgresql")
    url = plain_url.render_as_string(hide_password=False)

    result = _alembic_cli("-x", f"url={url}", "upgrade", "head")
    assert result.returncode == 0, result.stderr
    assert version_rows(pg, "joobq") == [HEAD]

    result = _alembic_cli("-x", f"url={url}", "current")
    assert result.returncode == 0, result.stderr
    assert f"{HEAD} (head)" in result.stdout


def test_alembic_cli_takes_url_and_schema_from_the_environment(
    fresh_database_url: str, pg: psycopg.Connection
) -> None:
    result = _alembic_cli(
        "upgrade",
        "head",
        env={"JOOBQ_DATABASE_URL": fresh_database_url, "JOOBQ_SCHEMA": "tenant_jobs"},
    )
    assert result.returncode == 0, result.stderr
    assert version_rows(pg, "tenant_jobs") == [HEAD]
    assert not schema_exists(pg, "joobq")


def test_alembic_cli_without_a_database_says_what_to_set() -> None:
    result = _alembic_cli("upgrade", "head")

    assert result.returncode != 0
    assert "JOOBQ_DATABASE_URL" in result.stderr


def test_alembic_cli_offline_needs_no_database() -> None:
    result = _alembic_cli("-x", "schema=tenant_jobs", "upgrade", "head", "--sql")

    assert result.returncode == 0, result.stderr
    assert "CREATE TABLE tenant_jobs.jobs" in result.stdout


def test_migrations_path_holds_the_revisions() -> None:
    path = migrate.migrations_path()

    assert (path / "env.py").is_file()
    assert (path / "versions" / "0001_initial_schema.py").is_file()
    assert migrate.history() == ["0001", "0002", "0003", "0004", "0005"]
    assert migrate.alembic_config().get_main_option("script_location") == str(path)
