"""`kredun.stores.Stores`: the provenance and value stores of one configuration, opened on
first use, and blob fetches bounded in bytes wherever the blob lives."""

from __future__ import annotations

from pathlib import Path

import pytest
from kredun.config import Config
from kredun.errors import ConfigError, LimitExceededError, ValueNotFoundError
from kredun.hashing import encode
from kredun.provenance.records import ProvenanceBatch
from kredun.scheduler import Scheduler
from kredun.serialize import preview, type_name
from kredun.stores import Stores
from kredun.valuestore import store_value


def config(tmp_path: Path) -> Config:
    return Config(f"sqlite:///{tmp_path / 'k.db'}", f"file://{tmp_path / 'values'}")


def record(stores: Stores, value: object) -> str:
    """Store a value as a run does: small ones inline in the provenance row."""
    value_hash, data = encode(value)
    row = store_value(stores.values, value_hash, data, type_name(value), preview(value))
    stores.provenance.write(ProvenanceBatch(values=[row]))
    return value_hash


def test_blobs_come_from_the_provenance_row_or_the_value_store(tmp_path) -> None:
    with Stores(config(tmp_path)) as stores:
        small, large = record(stores, "small"), record(stores, list(range(50_000)))
        assert small in stores.provenance.value_data([small])  # inline
        assert large not in stores.provenance.value_data([large])  # in the value store
        for value_hash in (small, large):
            data = stores.fetch_blob(value_hash)
            assert stores.fetch_blob(value_hash, max_bytes=len(data)) == data
            with pytest.raises(LimitExceededError, match=f"over the limit of {len(data) - 1}"):
                stores.fetch_blob(value_hash, max_bytes=len(data) - 1)
        with pytest.raises(ValueNotFoundError):
            stores.fetch_blob("0" * 40)


def test_stores_open_on_first_use_and_reopen_after_close(tmp_path) -> None:
    stores = Stores(Config(None, None))
    stores.close()  # nothing opened, nothing to close
    with pytest.raises(ConfigError, match=r"no database configured: set \[database\] uri"):
        stores.fetch_blob("0" * 40)
    stores = Stores(config(tmp_path))
    assert not (tmp_path / "k.db").exists()
    value_hash = record(stores, 42)
    stores.close()
    assert stores.fetch_blob(value_hash) == encode(42)[1]  # reopened
    stores.close()


def test_a_scheduler_reads_and_writes_through_its_stores(tmp_path) -> None:
    scheduler = Scheduler(config=config(tmp_path))
    try:
        assert scheduler.store is scheduler.stores.provenance
        assert scheduler.value_store is scheduler.stores.values
        value_hash = record(scheduler.stores, "x")
        assert scheduler.fetch_blob(value_hash) == encode("x")[1]
    finally:
        scheduler.close()
