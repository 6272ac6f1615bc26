"""relay gateways: the provinces whose points' heartbeats a point may forward

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 01:34:22.873405
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Existing points relay for nobody; the server default fills them in.
    with op.batch_alter_table("point", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("relays_for", sa.JSON(), server_default="[]", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("point", schema=None) as batch_op:
        batch_op.drop_column("relays_for")
