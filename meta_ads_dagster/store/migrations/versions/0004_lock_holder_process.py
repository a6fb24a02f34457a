"""meta_cycle_locks: the holder's process id and host, so a lock whose process is gone is taken over at once.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05

"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("meta_cycle_locks") as batch:
        batch.add_column(sa.Column("pid", sa.Integer))
        batch.add_column(sa.Column("host", sa.String(255)))


def downgrade() -> None:
    with op.batch_alter_table("meta_cycle_locks") as batch:
        batch.drop_column("host")
        batch.drop_column("pid")
