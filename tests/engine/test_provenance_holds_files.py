"""Values keep whether their jobs reported them holding Files or Dirs (schema 0006): the
operator checks those files in a job before replaying such a value. Tests taking `store_uri`
run on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from kredun import Dir, File
from kredun.builtins import files_valid
from kredun.deserialize import loads
from kredun.provenance.records import ProvenanceBatch, ValueRecord
from kredun.provenance.schema import HEAD_REVISION
from kredun.provenance.store import ProvenanceStore
from kredun.serialize import dumps
from sqlalchemy import create_engine, inspect, text

from tests.support.migrations import alembic_config
from tests.support.postgres import store_uri  # noqa: F401

OLD, WITH, WITHOUT = "a" * 40, "b" * 40, "c" * 40


def test_migration_0006_keeps_values_and_stores_holds_files(store_uri: str) -> None:  # noqa: F811
    engine = create_engine(store_uri.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection), "0005")
        connection.execute(
            text(
                "INSERT INTO kredun_value (scope, hash, type_name, preview, size, data, truth) "
                "VALUES ('', :h, 'builtins.int', '3', 5, :d, true)"
            ),
            {"h": OLD, "d": b"\x80\x04K\x03."},
        )
    try:
        with ProvenanceStore(store_uri) as store:
            assert store.upgrade() == ("0005", HEAD_REVISION)
            store.write(ProvenanceBatch(values=[
                ValueRecord(WITH, "builtins.dict", "{}", 5, None, holds_files=True),
                ValueRecord(WITHOUT, "builtins.int", "1", 5, None, holds_files=False),
            ]))  # fmt: skip
            records = store.value_records([OLD, WITH, WITHOUT])
            assert {key: record.holds_files for key, record in records.items()} == {
                OLD: None, WITH: True, WITHOUT: False
            }  # fmt: skip
            assert (records[OLD].data, records[OLD].truth) == (b"\x80\x04K\x03.", True)
        with engine.begin() as connection:
            command.downgrade(alembic_config(connection), "0005")
            columns = {column["name"] for column in inspect(connection).get_columns("kredun_value")}
            assert "holds_files" not in columns and "truth" in columns
    finally:
        engine.dispose()


def test_files_valid_checks_every_file_in_a_value_as_it_was_pickled(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x").write_text("x")
    report = tmp_path / "report.txt"
    report.write_text("one")
    # As a job receives it: unpickled, with the hashes taken when it was made.
    value = loads(dumps({"files": [File(str(report))], "dir": Dir(str(tmp_path / "d"))}))
    assert files_valid.func(value) is True
    report.write_text("other size")
    assert files_valid.func(value) is False
    report.write_text("one")
    (tmp_path / "d" / "y").write_text("new")
    assert files_valid.func(value) is False
    assert files_valid.func([1, "no files"]) is True
