"""Create the provenance tables: tasks, values, cached calls, executions and jobs.

Revision ID: 0001
Revises: (none)
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

HASH = sa.String(64)
STATUS = sa.String(16)
TIMESTAMP = sa.DateTime(timezone=True)


def _created() -> sa.Column:
    return sa.Column(
        "created", TIMESTAMP, nullable=False, server_default=sa.text("CURRENT_TIMESTAMP")
    )


def upgrade() -> None:
    op.create_table(
        "kredun_task",
        sa.Column("hash", HASH, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("namespace", sa.Text, nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        _created(),
    )
    op.create_table(
        "kredun_value",
        sa.Column("hash", HASH, primary_key=True),
        sa.Column("type_name", sa.Text, nullable=False),
        sa.Column("preview", sa.Text, nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=True),
        _created(),
    )
    op.create_table(
        "kredun_call",
        sa.Column("eval_hash", HASH, primary_key=True),
        sa.Column("task_hash", HASH, nullable=False),
        sa.Column("args_hash", HASH, nullable=False),
        sa.Column("result_hash", HASH, nullable=False),
        sa.Column("result_kind", STATUS, nullable=False),
        _created(),
    )
    op.create_table(
        "kredun_execution",
        sa.Column("id", HASH, primary_key=True),
        sa.Column("args", sa.Text, nullable=False),
        sa.Column("status", STATUS, nullable=False),
        sa.Column("start_time", TIMESTAMP, nullable=False),
        sa.Column("end_time", TIMESTAMP, nullable=True),
        sa.Column("result_hash", HASH, nullable=True),
        sa.Column("result_preview", sa.Text, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("parent_job_id", HASH, nullable=True),
    )
    op.create_index("ix_kredun_execution_start_time", "kredun_execution", ["start_time"])
    op.create_table(
        "kredun_job",
        sa.Column("id", HASH, primary_key=True),
        sa.Column("execution_id", HASH, nullable=False),
        sa.Column("parent_id", HASH, nullable=True),
        sa.Column("task_name", sa.Text, nullable=False),
        sa.Column("task_hash", HASH, nullable=False),
        sa.Column("eval_hash", HASH, nullable=True),
        sa.Column("status", STATUS, nullable=False),
        sa.Column("executor", sa.Text, nullable=False),
        sa.Column("start_time", TIMESTAMP, nullable=False),
        sa.Column("end_time", TIMESTAMP, nullable=True),
        sa.Column("result_hash", HASH, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("traceback", sa.Text, nullable=True),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.ForeignKeyConstraint(
            ["execution_id"], ["kredun_execution.id"], name="fk_kredun_job_execution_id"
        ),
    )
    op.create_index("ix_kredun_job_execution_id", "kredun_job", ["execution_id"])
    op.create_index("ix_kredun_job_parent_id", "kredun_job", ["parent_id"])
    op.create_index("ix_kredun_job_eval_hash", "kredun_job", ["eval_hash"])


def downgrade() -> None:
    for table in ("kredun_job", "kredun_execution", "kredun_call", "kredun_value", "kredun_task"):
        op.drop_table(table)
