"""accounts of the desk: named people with a role and a revocable token

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04 21:55:16.110230
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "account",
        sa.Column("full_name", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column(
            "role",
            sa.Enum("ADMINISTRATOR", "OPERATOR", "COORDINATOR", "VIEWER", name="role"),
            nullable=False,
        ),
        sa.Column("provinces", sa.JSON(), server_default="[]", nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("token_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("name"),
        sa.UniqueConstraint("token_hash"),
    )


def downgrade() -> None:
    op.drop_table("account")
    sa.Enum(name="role").drop(op.get_bind(), checkfirst=True)
