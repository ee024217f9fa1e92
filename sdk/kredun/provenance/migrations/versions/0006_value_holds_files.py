"""Whether a value holds a File or Dir, as the job that made it reported: the operator,
which does not unpickle values, has a job check those files before replaying the value.

One nullable column: rows written before say nothing, and are replayed as they were.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("kredun_value") as batch:
        batch.add_column(sa.Column("holds_files", sa.Boolean, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("kredun_value") as batch:
        batch.drop_column("holds_files")
