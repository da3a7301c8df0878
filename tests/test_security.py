"""Security properties: SQL is never built by formatting values into statement text, and
passwords never show in output."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from joobq_sql.settings import Settings, mask_password
from joobq_sql.store.postgres.queries import Queries, statement_names

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "joobq_sql"
SQL_CALLS = {"execute", "executemany", "exec_driver_sql", "copy", "text"}


def _formatted(node: ast.expr) -> str | None:
    """How `node` builds a string from values, if it does."""
    if isinstance(node, ast.JoinedStr) and any(
        isinstance(part, ast.FormattedValue) for part in node.values
    ):
        return "an f-string"
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod | ast.Add):
        return "% or + on strings"
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "format"
        # psycopg's sql.SQL(...).format(sql.Identifier(...)) quotes what it composes: allowed
        and not (isinstance(node.func.value, ast.Call) and _name(node.func.value.func) == "SQL")
    ):
        return "str.format"
    return None


def _name(func: ast.expr) -> str:
    if isinstance(func, ast.Attribute):
        return func.attr
    return func.id if isinstance(func, ast.Name) else ""


def test_no_statement_is_built_by_formatting_values_into_its_text() -> None:
    offences = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and _name(node.func) in SQL_CALLS and node.args:
                how = _formatted(node.args[0])
                if how:
                    offences.append(f"{path.relative_to(ROOT)}:{node.lineno}: SQL built with {how}")
    assert offences == []


def test_statement_files_take_values_only_as_named_parameters() -> None:
    for name in statement_names():
        text = (PACKAGE / "store/postgres/sql" / f"{name}.sql").read_text()
        assert re.findall(r"\{[A-Za-z_]+\}", text) in ([], ["{schema}"] * text.count("{schema}"))
        # every % is a named parameter or an escaped literal %
        assert re.sub(r"%\([a-z_]+\)s|%%", "", text).count("%") == 0, name


def test_the_only_text_substituted_is_a_validated_schema_identifier() -> None:
    with pytest.raises(ValueError, match="schema"):
        Queries('x"; DROP TABLE jobs; --')
    assert '"tenant_a".jobs' in Queries("tenant_a")["claim_jobs"]


def test_passwords_are_masked_in_settings() -> None:
    url = "postgresql://app:s3cret-pw@db.internal:5432/app?password=other-secret"
    settings = Settings(database_url=url)
    for shown in (repr(settings), str(settings.describe()), mask_password(url)):
        assert "s3cret-pw" not in shown and "other-secret" not in shown


@pytest.mark.parametrize(
    "argv",
    [
        ["stats"],
        ["jobs", "list"],
        ["migrate", "current"],
        ["worker", "--app", "tests.cli_app:app"],
    ],
)
def test_passwords_never_show_in_cli_output(argv: list[str]) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("JOOBQ_DATABASE_URL", "DATABASE_URL")}
    url = "postgresql://app:s3cret-pw@127.0.0.1:1/app?connect_timeout=2"
    result = subprocess.run(
        [sys.executable, "-m", "joobq_sql", "--database-url", url, *argv],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1, result.stderr
    assert "s3cret-pw" not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr
