"""The action ledger as first shipped: meta_actions (what ``metadata.create_all`` made before 0002).

Revision ID: 0001
Revises:
Create Date: 2026-11-20

"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "meta_actions",
        sa.Column("row_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("action_id", sa.String(64), nullable=False),
        sa.Column("cycle_run_id", sa.String(64), nullable=False),
        sa.Column("account_id", sa.String(64), nullable=False),
        sa.Column("as_of", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("entity_type", sa.String(16), nullable=False),
        sa.Column("entity_id", sa.String(64), nullable=False),
        sa.Column("rule", sa.String(32), nullable=False),
        sa.Column("proposed_pct", sa.Float),
        sa.Column("amount_pct", sa.Float),
        sa.Column("current_budget_minor", sa.BigInteger),
        sa.Column("new_budget_minor", sa.BigInteger),
        sa.Column("confidence", sa.Float),
        sa.Column("verdict", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reasons", sa.Text, nullable=False),
        sa.Column("details", sa.Text),
        sa.Column("error_message", sa.Text),
        sa.Column("executed_at", sa.DateTime(timezone=True)),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.UniqueConstraint("cycle_run_id", "action_id", name="uq_meta_actions_cycle_action"),
    )
    op.create_index("ix_meta_actions_entity", "meta_actions", ["account_id", "entity_type", "entity_id"])


def downgrade() -> None:
    op.drop_index("ix_meta_actions_entity", table_name="meta_actions")
    op.drop_table("meta_actions")
