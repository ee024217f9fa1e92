"""Values keep the truth their jobs reported (schema 0005): a cond on a cached value reads it
without loading the value. Tests taking `store_uri` run on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic import command
from kredun.provenance.records import ProvenanceBatch, ValueRecord
from kredun.provenance.schema import HEAD_REVISION
from kredun.provenance.store import ProvenanceStore
from sqlalchemy import create_engine, inspect, text

from tests.support.migrations import alembic_config
from tests.support.postgres import store_uri  # noqa: F401

OLD, YES, NO = "a" * 40, "b" * 40, "c" * 40


def test_migration_0005_keeps_values_and_stores_truth(store_uri: str) -> None:  # noqa: F811
    engine = create_engine(store_uri.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection), "0004")
        connection.execute(
            text(
                "INSERT INTO kredun_value (scope, hash, type_name, preview, size, data) "
                "VALUES ('', :h, 'builtins.int', '3', 5, :d)"
            ),
            {"h": OLD, "d": b"\x80\x04K\x03."},
        )
    try:
        with ProvenanceStore(store_uri) as store:
            assert store.upgrade() == ("0004", HEAD_REVISION)
            store.write(ProvenanceBatch(values=[
                ValueRecord(YES, "builtins.int", "1", 5, None, truth=True),
                ValueRecord(NO, "builtins.str", "''", 5, None, truth=False),
            ]))  # fmt: skip
            records = store.value_records([OLD, YES, NO])
            assert {key: record.truth for key, record in records.items()} == {
                OLD: None, YES: True, NO: False
            }  # fmt: skip
            assert records[OLD].data == b"\x80\x04K\x03."
        with engine.begin() as connection:
            command.downgrade(alembic_config(connection), "0004")
            columns = {column["name"] for column in inspect(connection).get_columns("kredun_value")}
            assert "truth" not in columns
    finally:
        engine.dispose()
