"""meta_automation_controls: the operator's stored mode and kill switch per account, with who and when.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30

"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "meta_automation_controls",
        sa.Column("row_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("account_id", sa.String(64), nullable=False),
        sa.Column("control", sa.String(16), nullable=False),
        sa.Column("value", sa.String(16), nullable=False),
        sa.Column("changed_by", sa.String(64), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_meta_automation_controls_account", "meta_automation_controls", ["account_id", "control"])


def downgrade() -> None:
    op.drop_index("ix_meta_automation_controls_account", table_name="meta_automation_controls")
    op.drop_table("meta_automation_controls")
