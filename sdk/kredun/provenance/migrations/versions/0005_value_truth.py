"""bool() of a value, as the job that made it reported it: the operator chooses a cond's
branch on a cached value without loading it.

One nullable column: rows written before have no truth, so a cond on them runs a job that
tests the value.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("kredun_value") as batch:
        batch.add_column(sa.Column("truth", sa.Boolean, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("kredun_value") as batch:
        batch.drop_column("truth")
