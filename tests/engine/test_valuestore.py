"""Value stores: memory, directory and S3 (moto over HTTP, real boto3)."""

from __future__ import annotations

import hashlib

import pytest
from kredun import Scheduler, task
from kredun.errors import ConfigError, LimitExceededError, StoreError, ValueNotFoundError
from kredun.valuestore import open_value_store

from tests.support.aws import moto_batch, moto_batch_environ  # noqa: F401  (fixtures)


@task(namespace="vs")
def large(n: int) -> bytes:
    return b"v" * n


def check_round_trip(store) -> None:
    store.put("a" * 40, b"one")
    store.put("a" * 40, b"one")  # idempotent
    assert store.exists("a" * 40) and store.get("a" * 40) == b"one"
    assert not store.exists("b" * 40)
    with pytest.raises(ValueNotFoundError, match="bbbbbbbb"):
        store.get("b" * 40)
    # A blob is hashed in chunks where it lies, with a byte cap; an outcome replaces.
    blob = bytes(range(256)) * 5000  # more than one chunk
    store.put("c" * 40, blob)
    assert store.digest("c" * 40) == (hashlib.sha1(blob).hexdigest(), len(blob))
    with pytest.raises(LimitExceededError, match="over the limit of 1000"):
        store.digest("c" * 40, max_bytes=1000)
    with pytest.raises(ValueNotFoundError, match="bbbbbbbb"):
        store.digest("b" * 40)
    store.put("a" * 40, b"two", replace=True)
    assert store.get("a" * 40) == b"two"


def test_memory_and_directory_stores(tmp_path):
    check_round_trip(open_value_store("memory://"))
    check_round_trip(open_value_store(f"file://{tmp_path / 'values'}"))


def test_unknown_scheme_is_a_config_error():
    with pytest.raises(ConfigError, match="unsupported value store URI 'ftp://x'"):
        open_value_store("ftp://x")


def test_s3_store_and_scheduler_on_s3(moto_batch_environ, tmp_path):  # noqa: F811
    moto_batch_environ.create_bucket("values")
    store = open_value_store("s3://values/kredun/test")
    check_round_trip(store)
    uri = "s3://values/kredun/test"
    database = f"sqlite:///{tmp_path / 'db.sqlite'}"
    first = Scheduler(db_uri=database, value_store=uri)
    assert len(first.run(large(100_000))) == 100_000
    keys = moto_batch_environ.client("s3").list_objects_v2(Bucket="values")["Contents"]
    assert len(keys) == 3 and all(k["Key"].startswith("kredun/test/") for k in keys)
    fresh = Scheduler(db_uri=database, value_store=uri)
    assert fresh.run(large(100_000)) == b"v" * 100_000


def test_s3_missing_bucket_is_a_clear_error(moto_batch_environ):  # noqa: F811
    store = open_value_store("s3://no-such-bucket/x")
    with pytest.raises(StoreError, match=r"s3://no-such-bucket/x: NoSuchBucket"):
        store.put("c" * 40, b"data")
