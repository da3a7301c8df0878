"""Initial schema: the jobs table, its partial indexes, and the sharded queue counters.

Revision ID: 0001
Revises:
Create Date: 2025-01-01 00:00:00

Everything is spelled out here instead of taken from build_metadata(): the MetaData describes
the newest schema, and a revision must keep doing what it did when it was written. A later
change to schema.py needs a new revision; check_drift() (and the test that calls it) reports a
MetaData that moved ahead of the revisions.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from joobq_sql.store.postgres.schema import DEFAULT_SCHEMA, validate_schema_name

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of what schema.py said when this revision was written.
_STATUSES = "'enqueued', 'scheduled', 'running', 'retrying', 'completed', 'dead'"
_RUNNABLE = "status IN ('enqueued', 'scheduled', 'retrying')"
_JOBS_STORAGE_PARAMETERS: dict[str, str] = {
    "fillfactor": "80",
    "autovacuum_vacuum_scale_factor": "0.02",
    "autovacuum_vacuum_threshold": "500",
    "autovacuum_vacuum_insert_scale_factor": "0.02",
    "autovacuum_analyze_scale_factor": "0.05",
    "autovacuum_vacuum_cost_delay": "0",
}


def _schema() -> str:
    """The schema env.py resolved and stored in the Alembic Config's attributes.

    The default only matters if these revisions run under some other env.py that does not set
    it. The name is validated again because it is formatted into SQL text below.
    """
    config = op.get_context().config
    schema = config.attributes.get("joobq_schema") if config is not None else None
    return validate_schema_name(schema or DEFAULT_SCHEMA)


def _create_schema(schema: str) -> None:
    # env.py already made the schema (its version table lives there); this keeps the revision
    # whole on its own. Online, look before creating: PostgreSQL checks the database's CREATE
    # privilege even when IF NOT EXISTS would find the schema, which fails for a role that
    # only owns a schema a DBA created for it.
    if not op.get_context().as_sql:
        exists = (
            op.get_bind()
            .execute(
                sa.text("SELECT 1 FROM pg_namespace WHERE nspname = :schema"),
                {"schema": schema},
            )
            .first()
        )
        if exists is not None:
            return
    op.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')


def upgrade() -> None:
    """Create the schema, the jobs table with its indexes and storage parameters, the counters."""
    schema = _schema()
    _create_schema(schema)

    op.create_table(
        "jobs",
        sa.Column("jid", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("queue", sa.Text(), nullable=False),
        sa.Column("job_type", sa.Text(), nullable=False),
        sa.Column(
            "args",
            postgresql.JSONB(),
            nullable=False,
            server_default=sa.text("'{}'::jsonb"),
        ),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("priority", sa.SmallInteger(), nullable=False, server_default=sa.text("0")),
        sa.Column(
            "run_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.func.now(),
        ),
        sa.Column("attempt", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("max_retries", sa.Integer(), nullable=False, server_default=sa.text("3")),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("worker_id", sa.Text(), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", postgresql.JSONB(), nullable=True),
        sa.Column(
            "errors",
            postgresql.JSONB(),
            nullable=False,
            server_default=sa.text("'[]'::jsonb"),
        ),
        sa.Column("dead_reason", sa.Text(), nullable=True),
        sa.Column("dead_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.func.now(),
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.func.now(),
        ),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("jid", name="jobs_pkey"),
        sa.CheckConstraint(f"status IN ({_STATUSES})", name="jobs_status_check"),
        sa.CheckConstraint("attempt >= 0", name="jobs_attempt_check"),
        sa.CheckConstraint("max_retries >= 0", name="jobs_max_retries_check"),
        sa.CheckConstraint("jsonb_typeof(args) = 'object'", name="jobs_args_object_check"),
        sa.CheckConstraint(
            "(status = 'running') = (worker_id IS NOT NULL AND lease_expires_at IS NOT NULL)",
            name="jobs_running_lease_check",
        ),
        sa.CheckConstraint(
            "status <> 'dead' OR dead_expires_at IS NOT NULL", name="jobs_dead_expiry_check"
        ),
        schema=schema,
    )
    # The claim query's index: runnable jobs per queue, highest priority first, then due time,
    # then insertion order.
    op.create_index(
        "jobs_claim_idx",
        "jobs",
        ["queue", sa.text("priority DESC"), "run_at", "id"],
        schema=schema,
        postgresql_where=sa.text(_RUNNABLE),
    )
    # The lease reaper's index: running jobs by lease expiry.
    op.create_index(
        "jobs_lease_idx",
        "jobs",
        ["lease_expires_at"],
        schema=schema,
        postgresql_where=sa.text("status = 'running'"),
    )
    # The dead-job purge's index.
    op.create_index(
        "jobs_dead_purge_idx",
        "jobs",
        ["dead_expires_at"],
        schema=schema,
        postgresql_where=sa.text("status = 'dead'"),
    )
    # The pruning of completed jobs kept for retention.
    op.create_index(
        "jobs_completed_prune_idx",
        "jobs",
        ["finished_at"],
        schema=schema,
        postgresql_where=sa.text("status = 'completed'"),
    )
    # A high-churn table: vacuum early and without naps, and leave room on each page for the
    # new row versions that claims and finishes write (see JOBS_STORAGE_PARAMETERS).
    parameters = ", ".join(f"{name} = {value}" for name, value in _JOBS_STORAGE_PARAMETERS.items())
    op.execute(f'ALTER TABLE "{schema}".jobs SET ({parameters})')

    op.create_table(
        "queue_counters",
        sa.Column("queue", sa.Text(), nullable=False),
        sa.Column("counter", sa.Text(), nullable=False),
        sa.Column("shard", sa.SmallInteger(), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False, server_default=sa.text("0")),
        sa.PrimaryKeyConstraint("queue", "counter", "shard", name="queue_counters_pkey"),
        schema=schema,
    )


def downgrade() -> None:
    """Drop the tables and indexes; drop the schema too, but only if nothing else is left in it.

    With env.py's settings the version table lives in the schema, and Alembic deletes its row
    after this function returns, in the same transaction. So the schema has to stay in that
    case, as it must whenever an application keeps its own objects there. DROP SCHEMA ...
    RESTRICT fails on a non-empty schema; the exception block turns that failure into "leave
    it", and the schema is dropped only when it really is empty (e.g. the version table was
    configured to live elsewhere).
    """
    schema = _schema()
    op.drop_table("queue_counters", schema=schema)
    op.drop_index("jobs_completed_prune_idx", table_name="jobs", schema=schema)
    op.drop_index("jobs_dead_purge_idx", table_name="jobs", schema=schema)
    op.drop_index("jobs_lease_idx", table_name="jobs", schema=schema)
    op.drop_index("jobs_claim_idx", table_name="jobs", schema=schema)
    op.drop_table("jobs", schema=schema)
    op.execute(
        f"""
        DO $$
        BEGIN
            DROP SCHEMA IF EXISTS "{schema}" RESTRICT;
        EXCEPTION WHEN dependent_objects_still_exist THEN
            NULL;  -- something else (at least the version table) still lives there
        END
        $$
        """
    )
