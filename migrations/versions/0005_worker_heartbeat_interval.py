"""Each worker's heartbeat interval, so that "alive" follows the worker's own heartbeat.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 09:00:00

- workers.heartbeat_interval_s: seconds between the worker's heartbeats, written with each of
  them. A worker counts as alive while it was heard from within three of its intervals, and
  its row is pruned once it has been silent for ten (a SIGKILLed worker never removes its own
  row). A fixed minute counted a killed worker with a 0.3 s heartbeat alive for 200 of them,
  and one with a 10-minute lease dead between two of its beats. Rows written by an older
  joobq-sql get 20 s: three of them are the minute those versions used.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from joobq_sql.store.postgres.schema import DEFAULT_SCHEMA, validate_schema_name

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _schema() -> str:
    """The schema env.py resolved (config.attributes["joobq_schema"]), validated."""
    config = op.get_context().config
    schema = config.attributes.get("joobq_schema") if config is not None else None
    return validate_schema_name(schema or DEFAULT_SCHEMA)


def upgrade() -> None:
    """Add workers.heartbeat_interval_s and its CHECK."""
    schema = _schema()
    op.add_column(
        "workers",
        sa.Column(
            "heartbeat_interval_s",
            sa.Float(precision=53),
            server_default=sa.text("20"),
            nullable=False,
        ),
        schema=schema,
    )
    op.create_check_constraint(
        "workers_heartbeat_interval_check", "workers", "heartbeat_interval_s > 0", schema=schema
    )


def downgrade() -> None:
    """Drop what upgrade added."""
    schema = _schema()
    op.drop_constraint("workers_heartbeat_interval_check", "workers", schema=schema, type_="check")
    op.drop_column("workers", "heartbeat_interval_s", schema=schema)
