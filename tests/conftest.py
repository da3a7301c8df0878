"""Fixtures shared by every test: a real PostgreSQL, and a fresh database per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from sqlalchemy.engine import make_url

from tests._database import pg15_missing_reason, provide_pg15_server, provide_test_server

TEMPLATE_DATABASE = "joobq_test_template"


def pytest_configure(config: pytest.Config) -> None:
    """`-m faults` asks for the fault suite at its full sizes (tests/test_faults.py reads
    JOOBQ_FAULTS_FULL when it is imported, after this)."""
    if "faults" in (config.getoption("markexpr") or ""):
        os.environ.setdefault("JOOBQ_FAULTS_FULL", "1")


def libpq_url(url: str, database: str | None = None) -> str:
    """The plain libpq form of a SQLAlchemy URL (for psycopg.connect), optionally re-pointed."""
    parsed = make_url(url).set(drivername="postgresql")
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def admin_url() -> Iterator[str]:
    """SQLAlchemy URL of the test server's maintenance database (tests may CREATE DATABASE)."""
    with provide_test_server() as url:
        yield url


def _create_database(admin_url: str, name: str, template: str | None = None) -> str:
    with psycopg.connect(libpq_url(admin_url), autocommit=True) as conn:
        clause = f' TEMPLATE "{template}"' if template else ""
        conn.execute(f'CREATE DATABASE "{name}"{clause}')
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def _drop_database(admin_url: str, name: str) -> None:
    with psycopg.connect(libpq_url(admin_url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def migrated_template(admin_url: str) -> str:
    """A database migrated to head once per session; each test copies it."""
    from joobq_sql.migrate import upgrade

    _drop_database(admin_url, TEMPLATE_DATABASE)
    url = _create_database(admin_url, TEMPLATE_DATABASE)
    upgrade(url)
    return TEMPLATE_DATABASE


@pytest.fixture
def fresh_database_url(admin_url: str) -> Iterator[str]:
    """SQLAlchemy URL of an empty database of its own, dropped after the test."""
    name = f"joobq_t_{uuid.uuid4().hex[:12]}"
    yield _create_database(admin_url, name)
    _drop_database(admin_url, name)


@pytest.fixture
def database_url(admin_url: str, migrated_template: str) -> Iterator[str]:
    """SQLAlchemy URL of a migrated database of its own, dropped after the test."""
    name = f"joobq_t_{uuid.uuid4().hex[:12]}"
    yield _create_database(admin_url, name, template=migrated_template)
    _drop_database(admin_url, name)


@pytest.fixture
def pg_store(database_url: str):
    from joobq_sql import PostgresStore

    store = PostgresStore(database_url)
    yield store
    store.close()


@pytest.fixture(scope="session")
def admin_url_pg15() -> Iterator[str]:
    """SQLAlchemy URL of a PostgreSQL 15 server started for the session, beside the main one.

    The oldest supported version: the contract and planning tests run on it too. Skips (with the
    package to install) where its binaries are absent.
    """
    reason = pg15_missing_reason()
    if reason is not None:
        pytest.skip(reason)
    with provide_pg15_server() as url:
        yield url


@pytest.fixture(scope="session")
def pg15_session_database_url(admin_url_pg15: str) -> str:
    """The one migrated database of the PostgreSQL 15 server; database_url_pg15 empties it."""
    from joobq_sql.migrate import upgrade

    url = _create_database(admin_url_pg15, "joobq_pg15")
    upgrade(url)
    return url


@pytest.fixture
def database_url_pg15(pg15_session_database_url: str) -> str:
    """SQLAlchemy URL of a migrated, empty database on PostgreSQL 15.

    One database emptied before each test, not one created per test as database_url does: a
    CREATE DATABASE costs about half a second here, emptying the tables a few milliseconds.
    """
    _empty_database(pg15_session_database_url)
    return pg15_session_database_url


def _empty_database(url: str) -> None:
    """Disconnect every other session (as DROP DATABASE ... WITH (FORCE) would) and empty every
    joobq table, identities restarted, so a test sees a database as fresh as a new one."""
    from joobq_sql.store.postgres.schema import VERSION_TABLE

    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        tables = [
            f'joobq."{name}"'
            for (name,) in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'joobq' AND tablename <> %s",
                (VERSION_TABLE,),
            )
        ]
        conn.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY")


@pytest.fixture
def pg15_store(database_url_pg15: str):
    from joobq_sql import PostgresStore

    store = PostgresStore(database_url_pg15)
    yield store
    store.close()


@pytest.fixture
def pg(database_url: str) -> Iterator[psycopg.Connection]:
    """A plain autocommit connection to the test's database, for looking at or altering rows."""
    with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
        yield conn


@pytest.fixture
def make_app(database_url: str) -> Iterator[Callable[..., Any]]:
    """Build JoobQ apps on the test's database; their workers are stopped after the test."""
    from joobq_sql import JoobQ, PostgresStore
    from tests.runtime_support import FAST

    apps: list[JoobQ] = []

    def build(store: Any = None, **settings: Any) -> JoobQ:
        store = store or PostgresStore(
            database_url,
            lease=settings.get("lease", 30),
            dead_letter_ttl=settings.get("dead_letter_ttl", 3600),
            keep_completed=settings.get("keep_completed"),
            notify=settings.get("notify", True),
        )
        app = JoobQ(store=store, database_url=database_url, **{**FAST, **settings})
        apps.append(app)
        return app

    yield build
    for app in apps:
        for worker in getattr(app, "_test_workers", []):
            worker.stop(grace=2)
        app.close()
