"""Unique jobs, re-drive, cooperative cancel, queue pauses, and schedule ticks.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 07:45:00

- jobs.unique_key with a partial unique index over (job_type, unique_key) while the job waits
  or runs: a second enqueue of the same key is skipped or refused, even under concurrency.
- jobs.redrive_attempt: the attempt count at the last re-drive of a dead job; retries count
  from it, so a re-driven job gets a fresh budget while its attempt number keeps rising.
- jobs.cancel_requested_at: a running job's cooperative cancel flag.
- queue_pauses: paused queues, honoured by every worker.
- schedule_ticks: one row per (schedule, tick) ever enqueued; its primary key makes each tick
  of a recurring or cron schedule enqueue exactly one job across all processes.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from joobq_sql.store.postgres.schema import DEFAULT_SCHEMA, validate_schema_name

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copy of schema.UNIQUE_WHILE_SQL when this revision was written.
_UNIQUE_WHILE = "status IN ('enqueued', 'scheduled', 'retrying', 'running')"


def _schema() -> str:
    """The schema env.py resolved (config.attributes["joobq_schema"]), validated."""
    config = op.get_context().config
    schema = config.attributes.get("joobq_schema") if config is not None else None
    return validate_schema_name(schema or DEFAULT_SCHEMA)


def upgrade() -> None:
    """Add the unique key and cancel flag to jobs; create queue_pauses and schedule_ticks."""
    schema = _schema()
    op.add_column("jobs", sa.Column("unique_key", sa.Text(), nullable=True), schema=schema)
    op.add_column(
        "jobs",
        sa.Column("redrive_attempt", sa.Integer(), server_default=sa.text("0"), nullable=False),
        schema=schema,
    )
    op.add_column(
        "jobs",
        sa.Column("cancel_requested_at", sa.DateTime(timezone=True), nullable=True),
        schema=schema,
    )
    op.create_index(
        "jobs_unique_key_idx",
        "jobs",
        ["job_type", "unique_key"],
        unique=True,
        schema=schema,
        postgresql_where=sa.text(f"unique_key IS NOT NULL AND {_UNIQUE_WHILE}"),
    )
    op.create_table(
        "queue_pauses",
        sa.Column("queue", sa.Text(), nullable=False),
        sa.Column(
            "paused_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("queue", name="queue_pauses_pkey"),
        schema=schema,
    )
    op.create_table(
        "schedule_ticks",
        sa.Column("schedule", sa.Text(), nullable=False),
        sa.Column("tick", sa.DateTime(timezone=True), nullable=False),
        sa.Column("jid", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("schedule", "tick", name="schedule_ticks_pkey"),
        schema=schema,
    )
    op.create_index("schedule_ticks_tick_idx", "schedule_ticks", ["tick"], schema=schema)


def downgrade() -> None:
    """Drop what upgrade added."""
    schema = _schema()
    op.drop_index("schedule_ticks_tick_idx", table_name="schedule_ticks", schema=schema)
    op.drop_table("schedule_ticks", schema=schema)
    op.drop_table("queue_pauses", schema=schema)
    op.drop_index("jobs_unique_key_idx", table_name="jobs", schema=schema)
    op.drop_column("jobs", "cancel_requested_at", schema=schema)
    op.drop_column("jobs", "redrive_attempt", schema=schema)
    op.drop_column("jobs", "unique_key", schema=schema)
