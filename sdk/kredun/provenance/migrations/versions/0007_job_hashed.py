"""What else took part in a job's call hash besides its task's source and its arguments:
the task's version and hash_includes and the context keys read into arguments, as JSON, so
`kredun log --why` can name a difference there.

One nullable column: jobs recorded before say nothing, and are explained as they were.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("kredun_job") as batch:
        batch.add_column(sa.Column("hashed", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("kredun_job") as batch:
        batch.drop_column("hashed")
