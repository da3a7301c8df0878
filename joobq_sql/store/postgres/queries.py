"""Every SQL statement the PostgreSQL store runs, loaded from sql/<name>.sql.

One statement per file, named for what it does, so each can be read, reviewed and EXPLAINed on
its own. Values always travel as parameters (%(name)s). The only text substituted is the schema
name, which is validated as a plain identifier and quoted.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from .schema import validate_schema_name

_SQL_PACKAGE = __package__ + ".sql"


@cache
def _template(name: str) -> str:
    return resources.files(_SQL_PACKAGE).joinpath(f"{name}.sql").read_text(encoding="utf-8")


def statement_names() -> list[str]:
    return sorted(
        entry.name.removesuffix(".sql")
        for entry in resources.files(_SQL_PACKAGE).iterdir()
        if entry.name.endswith(".sql")
    )


class Queries:
    """The statements, rendered once for one schema."""

    def __init__(self, schema: str) -> None:
        quoted = f'"{validate_schema_name(schema)}"'
        self._rendered = {
            name: _template(name).replace("{schema}", quoted) for name in statement_names()
        }

    def __getitem__(self, name: str) -> str:
        return self._rendered[name]
