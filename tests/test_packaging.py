"""The wheel carries what an installed joobq_sql needs: the Alembic revisions and the SQL."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from joobq_sql.migrate import head

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_the_wheel_carries_the_migrations_and_the_sql_statements(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("joobq_sql-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    revisions = sorted(p.name for p in (ROOT / "migrations" / "versions").glob("*.py"))
    assert revisions
    for revision in revisions:
        assert f"joobq_sql/_migrations/versions/{revision}" in names
    assert "joobq_sql/_migrations/env.py" in names
    assert "joobq_sql/_migrations/script.py.mako" in names
    statements = sorted(p.name for p in (ROOT / "joobq_sql/store/postgres/sql").glob("*.sql"))
    for statement in statements:
        assert f"joobq_sql/store/postgres/sql/{statement}" in names


@pytest.mark.slow
def test_an_installed_wheel_migrates_a_database_on_its_own(
    tmp_path: Path, fresh_database_url: str
) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("joobq_sql-*.whl")
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    script = (
        "import joobq_sql.migrate as m, sys; "
        "print(m.migrations_path()); m.upgrade(sys.argv[1]); print(m.current(sys.argv[1]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, fresh_database_url],
        env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    where, revision = result.stdout.split()
    assert Path(where) == target / "joobq_sql" / "_migrations"
    assert revision == head()  # the newest revision the repository has


def test_a_plain_install_brings_greenlet() -> None:
    """`import joobq_sql` loads the asyncio API, and SQLAlchemy's AsyncEngine needs greenlet,
    which SQLAlchemy 2.1 no longer installs by itself: the README's first command (the
    `embedded` extra only) failed on a fresh machine without it. So greenlet comes with the
    plain install: an unconditional requirement of SQLAlchemy[asyncio] (or greenlet)."""
    from importlib.metadata import requires

    from packaging.requirements import Requirement

    plain = [Requirement(r) for r in requires("joobq-sql") or []]
    plain = [r for r in plain if r.marker is None]
    assert any(
        r.name.lower() == "greenlet" or (r.name.lower() == "sqlalchemy" and "asyncio" in r.extras)
        for r in plain
    ), plain
