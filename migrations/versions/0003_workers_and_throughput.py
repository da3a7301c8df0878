"""Live workers, completed jobs per minute, and checks against rows that would wedge a queue.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 08:35:00

- workers: one row per running Worker, refreshed by its heartbeat and removed when it stops,
  so operators see which workers are alive (a crashed one goes stale and is pruned).
- queue_throughput: completed jobs per queue per minute, sharded like queue_counters and
  written by the same completion statement, so throughput over the last hour is exact and
  cheap to read. Rows older than a day are pruned.
- jobs: CHECK attempt < 1e9 (the claim's attempt + 1 must not overflow) and finite run_at /
  expires_at (infinity cannot be read back into Python), so a hand-edited row is refused by
  the database instead of wedging its queue.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from joobq_sql.store.postgres.schema import DEFAULT_SCHEMA, validate_schema_name

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _schema() -> str:
    """The schema env.py resolved (config.attributes["joobq_schema"]), validated."""
    config = op.get_context().config
    schema = config.attributes.get("joobq_schema") if config is not None else None
    return validate_schema_name(schema or DEFAULT_SCHEMA)


def upgrade() -> None:
    """Create workers and queue_throughput."""
    schema = _schema()
    op.create_table(
        "workers",
        sa.Column("worker_id", sa.Text(), nullable=False),
        sa.Column("host", sa.Text(), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("queues", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column(
            "started_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "last_seen_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("worker_id", name="workers_pkey"),
        schema=schema,
    )
    op.create_table(
        "queue_throughput",
        sa.Column("queue", sa.Text(), nullable=False),
        sa.Column("minute", sa.DateTime(timezone=True), nullable=False),
        sa.Column("shard", sa.SmallInteger(), nullable=False),
        sa.Column("completed", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.PrimaryKeyConstraint("queue", "minute", "shard", name="queue_throughput_pkey"),
        schema=schema,
    )
    op.create_index("queue_throughput_minute_idx", "queue_throughput", ["minute"], schema=schema)
    # Rows altered by hand must not wedge a queue (see schema.py).
    op.create_check_constraint(
        "jobs_attempt_bound_check", "jobs", "attempt < 1000000000", schema=schema
    )
    op.create_check_constraint(
        "jobs_times_finite_check",
        "jobs",
        "isfinite(run_at) AND (expires_at IS NULL OR isfinite(expires_at))",
        schema=schema,
    )


def downgrade() -> None:
    """Drop what upgrade created."""
    schema = _schema()
    op.drop_constraint("jobs_times_finite_check", "jobs", schema=schema, type_="check")
    op.drop_constraint("jobs_attempt_bound_check", "jobs", schema=schema, type_="check")
    op.drop_index("queue_throughput_minute_idx", table_name="queue_throughput", schema=schema)
    op.drop_table("queue_throughput", schema=schema)
    op.drop_table("workers", schema=schema)
