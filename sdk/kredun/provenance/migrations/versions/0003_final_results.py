"""Final values of calls that returned expressions, for check_valid="shallow".

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "kredun_final",
        # Finals are scoped like calls: one tenant's are never another's (kredun.tenancy).
        sa.Column("scope", sa.String(80), primary_key=True, server_default=""),
        sa.Column("call_key", sa.String(129), primary_key=True),
        sa.Column("result_hash", sa.String(64), nullable=False),
        sa.Column("task_hashes", sa.Text, nullable=False),
        sa.Column(
            "created",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.text("CURRENT_TIMESTAMP"),
        ),
    )


def downgrade() -> None:
    op.drop_table("kredun_final")
