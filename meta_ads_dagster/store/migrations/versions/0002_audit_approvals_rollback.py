"""Audit fields, approvals and rollback on meta_actions; the per-account meta_cycle_locks.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-20

"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _new_columns() -> list[sa.Column]:
    """All nullable: existing rows keep their values and read NULL in the new fields."""
    return [
        sa.Column("step", sa.String(32)),
        sa.Column("input_snapshot", sa.Text),
        sa.Column("output_snapshot", sa.Text),
        sa.Column("success", sa.Boolean),
        sa.Column("minor_per_unit", sa.Integer),
        sa.Column("prior_budget_minor", sa.BigInteger),
        sa.Column("prior_status", sa.String(16)),
        sa.Column("decided_by", sa.String(64)),
        sa.Column("decided_at", sa.DateTime(timezone=True)),
        sa.Column("decision_reason", sa.Text),
        sa.Column("expires_at", sa.DateTime(timezone=True)),
        sa.Column("rollback_of_run", sa.String(64)),
    ]


def upgrade() -> None:
    with op.batch_alter_table("meta_actions") as batch:
        for column in _new_columns():
            batch.add_column(column)
        batch.create_index("ix_meta_actions_status", ["account_id", "status"])
    op.create_table(
        "meta_cycle_locks",
        sa.Column("account_id", sa.String(64), primary_key=True),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("meta_cycle_locks")
    with op.batch_alter_table("meta_actions") as batch:
        batch.drop_index("ix_meta_actions_status")
        for column in reversed(_new_columns()):
            batch.drop_column(column.name)
