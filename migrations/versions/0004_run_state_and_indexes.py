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
- jobs_times_in_range_check: every time of a job lies in the years 1..9999 (UTC), which
  Python's datetime holds; one it could not (an infinite created_at, an expires_at in year
  20000) failed every claim of the row's queue. Adding it fails on a table that has such a
  row: fix or delete that row (it was wedging its queue), then migrate again.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from joobq_sql.store.postgres.schema import DEFAULT_SCHEMA, validate_schema_name

# Written out, not imported: a revision must keep creating what it created when it was written.
_EXPIRY_PREDICATE = (
    "status IN ('enqueued', 'scheduled', 'retrying') "
    "AND expires_at IS NOT NULL AND attempt <= redrive_attempt "
    "AND (last_error ->> 'error_type') IS DISTINCT FROM 'lease_expired_unstarted'"
)

_TIME_COLUMNS = (
    "run_at", "expires_at", "lease_expires_at", "dead_expires_at", "created_at", "updated_at",
    "finished_at", "cancel_requested_at", "unrunnable_since",
)  # fmt: skip
_TIMES_IN_RANGE = " AND ".join(
    f"{column} BETWEEN '0001-01-01 00:00:00+00' AND '9999-12-31 23:59:59.999999+00'"
    for column in _TIME_COLUMNS
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
    """Add the run-state columns, the expiry sweep's index and the bound on times."""
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
    op.create_check_constraint("jobs_times_in_range_check", "jobs", _TIMES_IN_RANGE, schema=schema)


def downgrade() -> None:
    """Drop what upgrade added."""
    schema = _schema()
    op.drop_constraint("jobs_times_in_range_check", "jobs", schema=schema, type_="check")
    op.drop_index("jobs_expiry_idx", table_name="jobs", schema=schema)
    op.drop_column("jobs", "unrunnable_since", schema=schema)
    op.drop_column("jobs", "started", schema=schema)
