"""What PostgreSQL's statistics views say about the jobs table, for /metrics."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources

from ...store.base import Store


@dataclass(frozen=True)
class DatabaseHealth:
    """None where the database cannot tell (another store, or no statistics yet)."""

    jobs_dead_tuples: int | None = None
    oldest_transaction_age: float | None = None


@cache
def _statement() -> str:
    return resources.files("joobq_sql.web.sql").joinpath("database_health.sql").read_text("utf-8")


def database_health(store: Store) -> DatabaseHealth:
    """Read the statistics in a read-only transaction of the store's own engine. Only a
    PostgresStore has them; any other store gives an empty DatabaseHealth."""
    from ...store.postgres.store import PostgresStore

    if not isinstance(store, PostgresStore):
        return DatabaseHealth()
    engine = store.engine.execution_options(postgresql_readonly=True)
    with engine.connect() as connection:
        row = connection.exec_driver_sql(_statement(), {"schema": store.schema}).one()
        connection.rollback()
    dead, age = row
    return DatabaseHealth(
        jobs_dead_tuples=None if dead is None else int(dead),
        oldest_transaction_age=None if age is None else max(float(age), 0.0),
    )
