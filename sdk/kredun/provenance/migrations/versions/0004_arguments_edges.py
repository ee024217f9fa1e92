"""Provenance that answers questions: call arguments, the call graph, file lineage, tags,
and why a job did not consult the cache.

Only new tables and one nullable column: every row written before stays as it was.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

HASH = sa.String(64)
SHORT = sa.String(16)
# Ignored by PostgreSQL; on SQLite the rows live in the primary key's b-tree.


def upgrade() -> None:
    with op.batch_alter_table("kredun_job") as batch:
        batch.add_column(sa.Column("cache_off", SHORT, nullable=True))
    op.create_table(
        "kredun_argument",
        sa.Column("job_id", HASH, primary_key=True),
        sa.Column("position", sa.Integer, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("value_hash", HASH, nullable=False),
        sa.Column("preview", sa.Text, nullable=False),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "kredun_edge",
        sa.Column("src_job_id", HASH, primary_key=True),
        sa.Column("dst_job_id", HASH, primary_key=True),
        sa.Column("name", sa.Text, primary_key=True),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_kredun_edge_dst_job_id", "kredun_edge", ["dst_job_id"])
    op.create_table(
        "kredun_file",
        sa.Column("job_id", HASH, primary_key=True),
        sa.Column("role", SHORT, primary_key=True),
        sa.Column("path", sa.Text, primary_key=True),
        sa.Column("hash", HASH, nullable=False),
        sa.Column("kind", SHORT, nullable=False),
        sa.Column(
            "created",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.text("CURRENT_TIMESTAMP"),
        ),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_kredun_file_path", "kredun_file", ["path"])
    op.create_table(
        "kredun_tag",
        sa.Column("entity_id", HASH, primary_key=True),
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("value", sa.Text, primary_key=True),
        sa.Column("entity_kind", SHORT, nullable=False),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_kredun_tag_key_value", "kredun_tag", ["key", "value"])


def downgrade() -> None:
    for table in ("kredun_tag", "kredun_file", "kredun_edge", "kredun_argument"):
        op.drop_table(table)
    with op.batch_alter_table("kredun_job") as batch:
        batch.drop_column("cache_off")
