"""${message}

Revision ID: ${up_revision}
Revises: ${down_revision | comma,n}
Create Date: ${create_date}

Spell every operation out (op.create_table, op.add_column, ...); never call build_metadata() or
metadata.create_all() here: a revision must keep doing what it did when it was written. Pass
schema=_schema() to every operation: autogenerate writes schema='joobq', which would ignore a
configured schema. Number revisions in sequence: alembic revision --rev-id 0002 -m "...".
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
${imports if imports else ""}
from joobq_sql.store.postgres.schema import DEFAULT_SCHEMA, validate_schema_name

revision: str = ${repr(up_revision)}
down_revision: str | Sequence[str] | None = ${repr(down_revision)}
branch_labels: str | Sequence[str] | None = ${repr(branch_labels)}
depends_on: str | Sequence[str] | None = ${repr(depends_on)}


def _schema() -> str:
    """The schema env.py resolved (config.attributes["joobq_schema"]), validated."""
    config = op.get_context().config
    schema = config.attributes.get("joobq_schema") if config is not None else None
    return validate_schema_name(schema or DEFAULT_SCHEMA)


def upgrade() -> None:
    """Upgrade joobq's tables."""
    ${upgrades if upgrades else "pass"}


def downgrade() -> None:
    """Downgrade joobq's tables."""
    ${downgrades if downgrades else "pass"}
