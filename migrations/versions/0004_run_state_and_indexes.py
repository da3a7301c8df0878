"""Run state the runtime needs to keep its promises, and indexes that keep sweeps and claims cheap.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 06:00:00

- jobs.started: whether the current attempt's run has started, as its worker last reported
  with its lease renewal: NULL unknown (counted as started), false claimed but not started
  (waiting in the worker's buffer), true started. A rescued attempt that is known not to have
  started does not spend the job's retry budget.
- jobs.unrunnable_since: when a worker first handed the job back because it could not run it
  (an unknown job type or args that do not fit its class, as in a rolling deploy); the job
  goes dead only once no worker has run it for the configured time.
- jobs_expiry_idx: the expiry sweep's index, over the jobs it may expire (waiting, with an
  expiry, never started), by expires_at; the sweep read the whole table without it.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from joobq_sql.store.postgres.schema import DEFAULT_SCHEMA, validate_schema_name

# Written out, not imported: a revision must keep creating what it created when it was written.
_EXPIRY_PREDICATE = (
    "status IN ('enqueued', 'scheduled', 'retrying') "
    "AND expires_at IS NOT NULL AND attempt <= redrive_attempt"
)

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _schema() -> str:
    """The schema env.py resolved (config.attributes["joobq_schema"]), validated."""
    config = op.get_context().config
    schema = config.attributes.get("joobq_schema") if config is not None else None
    return validate_schema_name(schema or DEFAULT_SCHEMA)


def upgrade() -> None:
    """Add the run-state columns and the expiry sweep's index."""
    schema = _schema()
    op.add_column("jobs", sa.Column("started", sa.Boolean(), nullable=True), schema=schema)
    op.add_column(
        "jobs",
        sa.Column("unrunnable_since", sa.DateTime(timezone=True), nullable=True),
        schema=schema,
    )
    op.create_index(
        "jobs_expiry_idx",
        "jobs",
        ["expires_at"],
        schema=schema,
        postgresql_where=sa.text(_EXPIRY_PREDICATE),
    )


def downgrade() -> None:
    """Drop what upgrade added."""
    schema = _schema()
    op.drop_index("jobs_expiry_idx", table_name="jobs", schema=schema)
    op.drop_column("jobs", "unrunnable_since", schema=schema)
    op.drop_column("jobs", "started", schema=schema)
