"""token sheets: when each point's sheet was last printed

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07 14:50:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("point", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sheet_printed_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("point", schema=None) as batch_op:
        batch_op.drop_column("sheet_printed_at")
