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
SQL_CALLS = {"execute", "executemany", "exec_driver_sql", "copy", "text", "SQL"}


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


#: Text that reads as an SQL statement, where it starts: the doctor's advice, an error's
#: hint, anything an operator may paste into psql. Prose that only names a command ("VACUUM
#: cannot remove ...") does not match.
SQL_TEXT = re.compile(
    r"\b(?:SELECT\s+[\w*(]|INSERT\s+INTO|UPDATE\s+[\w.\"]+\s+SET|DELETE\s+FROM"
    r"|(?:DROP|CREATE|ALTER)\s+(?:TABLE|INDEX|SCHEMA|DATABASE|ROLE|SYSTEM|EXTENSION)"
    r"|(?:ROLLBACK|COMMIT)\s+PREPARED|PREPARE\s+TRANSACTION|TRUNCATE\s+|GRANT\s+|REVOKE\s+"
    r"|VACUUM\s*(?:\(|FULL\b|ANALYZE\b|VERBOSE\b|[\w\"]+\.)|LOCK\s+TABLE)"
)


def _quoted_by_psycopg(node: ast.expr) -> bool:
    """`sql.Literal(x).as_string(conn)` and the like: psycopg quoted the value itself."""
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "as_string"
    )


def _sql_built_by_formatting(node: ast.AST) -> str | None:
    """How `node` formats a value into text that reads as SQL, if it does."""
    if isinstance(node, ast.JoinedStr):
        text = ""
        for part in node.values:
            if isinstance(part, ast.Constant) and isinstance(part.value, str):
                text += part.value
            elif (
                isinstance(part, ast.FormattedValue)
                and SQL_TEXT.search(text)
                and not _quoted_by_psycopg(part.value)
            ):
                return "an f-string"
        return None
    if (
        isinstance(node, ast.BinOp)
        and isinstance(node.op, ast.Mod)
        and isinstance(node.left, ast.Constant)
        and isinstance(node.left.value, str)
        and (match := SQL_TEXT.search(node.left.value))
        and "%" in node.left.value[match.start() :]
    ):
        return "% formatting"
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "format"
        and isinstance(node.func.value, ast.Constant)
        and isinstance(node.func.value.value, str)
        and (match := SQL_TEXT.search(node.func.value.value))
        and "{" in node.func.value.value[match.start() :]
    ):
        return "str.format"
    return None


def test_no_sql_text_is_built_by_formatting_values_into_it() -> None:
    """SQL that is printed (advice to paste) is built like SQL that is run: a value in it is
    quoted by psycopg (sql.Literal / sql.Identifier ... .as_string(conn)), never formatted in.
    A gid formatted into the doctor's ROLLBACK PREPARED advice dropped a table when pasted."""
    offences = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            how = _sql_built_by_formatting(node)
            if how:
                where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', '?')}"
                offences.append(f"{where}: SQL text built with {how}")
    assert offences == []


def test_the_sql_text_scan_sees_formatted_advice_and_passes_quoted_values() -> None:
    def scan(source: str) -> str | None:
        node = ast.parse(source, mode="eval").body
        return _sql_built_by_formatting(node)

    assert scan("f\"ROLLBACK PREPARED '{gid}'\"") == "an f-string"
    assert scan('f"SELECT pg_terminate_backend({pid})"') == "an f-string"
    assert scan('"DROP TABLE %s" % name') == "% formatting"
    assert scan("\"DELETE FROM jobs WHERE queue = '{}'\".format(q)") == "str.format"
    assert scan('f"end it ({sql.Literal(gid).as_string(conn)})"') is None
    assert scan('f"VACUUM cannot remove the jobs of {schema}.jobs"') is None
    assert scan("f\"naptime is {n}s; set it (ALTER SYSTEM SET naptime = '5s')\"") is None


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
