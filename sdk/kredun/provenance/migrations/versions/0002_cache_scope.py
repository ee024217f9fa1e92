"""Cached calls and values belong to a cache scope (a tenant): `scope` joins their keys.

Rows written before this revision belong to the default scope "" (runs outside a cluster).

Revision ID: 0002
Revises: 0001
"""

import warnings

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

KEYS = {"kredun_call": "eval_hash", "kredun_value": "hash"}


def _rebuilt() -> bool:
    """SQLite cannot change a primary key in place: batch mode rebuilds the table, and the
    new key replaces the old (which has no name there to drop it by)."""
    return op.get_bind().dialect.name == "sqlite"


def upgrade() -> None:
    for table, key in KEYS.items():
        with warnings.catch_warnings(), op.batch_alter_table(table, recreate="auto") as batch:
            # The rebuilt table's old key column still says primary_key=True and SQLAlchemy
            # warns that the new key wins, which is the point.
            warnings.filterwarnings("ignore", "Table '_alembic_tmp_", sa.exc.SAWarning)
            batch.add_column(sa.Column("scope", sa.String(80), nullable=False, server_default=""))
            if not _rebuilt():
                batch.drop_constraint(f"{table}_pkey", type_="primary")
            batch.create_primary_key(f"{table}_pkey", ["scope", key])


def downgrade() -> None:
    for table, key in KEYS.items():
        op.execute(f"DELETE FROM {table} WHERE scope <> ''")
        with op.batch_alter_table(table, recreate="auto") as batch:
            if not _rebuilt():
                batch.drop_constraint(f"{table}_pkey", type_="primary")
            batch.drop_column("scope")
            batch.create_primary_key(f"{table}_pkey", [key])
