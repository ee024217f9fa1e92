"""Cache scopes (kredun.tenancy): configuration, the provenance store's scoped rows and
their migration, scoped value stores, and the checks on hashes and sizes that keep a value
reference from naming anything but a value."""

from __future__ import annotations

import pytest
from alembic import command
from kredun import Scheduler, task
from kredun.config import Config, config_from_dict, project_config
from kredun.domains import fetch_plan
from kredun.errors import (
    ConfigError,
    InvalidHashError,
    LimitExceededError,
    PlanError,
    ValueNotFoundError,
)
from kredun.hashing import hash_bytes
from kredun.provenance.records import CallRecord, ProvenanceBatch, ValueRecord
from kredun.provenance.store import ProvenanceStore
from kredun.refs import ref_from_json
from kredun.tenancy import Tenancy, parse_tenancy, scoped_store_uri
from kredun.valuestore import INLINE_VALUE_LIMIT, open_value_store
from sqlalchemy import create_engine, text

from tests.support.migrations import alembic_config
from tests.support.postgres import store_uri  # noqa: F401

kredun_namespace = "tenancy"
A, B = "ns/team-a", "ns/team-b"
H1, H2, H3 = "1" * 40, "2" * 40, "3" * 40


@task()
def double(x: int) -> int:
    return 2 * x


# -- configuration ----------------------------------------------------------------------------


def test_shared_cache_groups_decide_a_namespace_s_scope() -> None:
    tenancy = parse_tenancy({"shared_cache": {"analytics": ["team-a", "team-b"]}})
    assert tenancy.scope_of("team-a") == tenancy.scope_of("team-b") == "shared/analytics"
    assert tenancy.scope_of("team-c") == "ns/team-c"
    assert Tenancy().scope_of("team-a") == "ns/team-a"


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"shared_cache": [["a", "b"]]}, r"\[tenancy.shared_cache\] must be a table of group"),
        ({"shared_cache": {"g": ["a"]}}, "tenancy.shared_cache.g must list at least two"),
        ({"shared_cache": {"g": ["a", "B_"]}}, "tenancy.shared_cache.g must list at least two"),
        ({"shared_cache": {"G!": ["a", "b"]}}, "shared_cache.G!: a group name must be a DNS"),
        (
            {"shared_cache": {"g": ["a", "b"], "h": ["b", "c"]}},
            "namespace 'b' is already in group 'g'",
        ),
        ({"cache_scope": "team-a"}, "tenancy.cache_scope must be \"\" .* not 'team-a'"),
        ({"cache_scope": "ns/../x"}, "tenancy.cache_scope must be"),
        ({"shared": {}}, r"unknown key\(s\) shared \(known: cache_scope, shared_cache\)"),
        ("x", r"\[tenancy\] must be a table"),
    ],
)
def test_bad_tenancy_configuration_names_the_key(table, message) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_tenancy(table, "kredun.toml")


def test_the_scope_comes_from_the_file_or_the_environment(tmp_path, monkeypatch) -> None:
    assert config_from_dict({"tenancy": {"cache_scope": A}}).cache_scope == A
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KREDUN_CACHE_SCOPE", B)
    assert project_config().cache_scope == B
    monkeypatch.setenv("KREDUN_CACHE_SCOPE", "../etc")
    with pytest.raises(ConfigError, match=r"\$KREDUN_CACHE_SCOPE must be"):
        project_config()


def test_a_scope_s_values_live_under_the_store_root() -> None:
    assert scoped_store_uri("s3://bucket/prefix", A) == "s3://bucket/prefix/ns/team-a"
    assert scoped_store_uri("s3://bucket", "shared/g") == "s3://bucket/shared/g"
    assert scoped_store_uri("file:///data/values/", A) == "file:///data/values/ns/team-a"
    assert scoped_store_uri("file:///data/values", "") == "file:///data/values"
    assert scoped_store_uri("memory://", A) == "memory://"


# -- the provenance store ---------------------------------------------------------------------


def test_calls_and_values_are_seen_only_in_their_scope(store_uri) -> None:  # noqa: F811
    small = ValueRecord(H2, "builtins.int", "2", 5, b"two")
    with ProvenanceStore(store_uri, A) as team_a, ProvenanceStore(store_uri, B) as team_b:
        team_a.ensure_schema()
        team_a.write(ProvenanceBatch(values=[small], calls=[CallRecord(H1, H1, H1, H2, "value")]))
        assert team_b.lookup_calls([H1]) == {}
        assert team_b.value_records([H2]) == {} and team_b.value_data([H2]) == {}
        assert team_a.lookup_calls([H1])[H1].result_hash == H2
        assert team_a.value_data([H2]) == {H2: b"two"}
        # The same eval hash in another scope is another row: B's result does not replace A's.
        team_b.write(ProvenanceBatch(calls=[CallRecord(H1, H1, H1, H3, "value")]))
        assert team_a.lookup_calls([H1])[H1].result_hash == H2
        assert team_b.lookup_calls([H1])[H1].result_hash == H3
        assert team_b.lookup_calls([H1])[H1].scope == B
        with ProvenanceStore(store_uri) as laptop:
            assert laptop.lookup_calls([H1]) == {}


def test_oversized_inline_data_is_not_read(store_uri) -> None:  # noqa: F811
    """Inline data is at most INLINE_VALUE_LIMIT bytes; a row claiming more is not loaded."""
    with ProvenanceStore(store_uri, A) as store:
        store.ensure_schema()
        huge = b"x" * (INLINE_VALUE_LIMIT + 1)
        store.write(ProvenanceBatch(values=[ValueRecord(H1, "bytes", "b'x...'", len(huge), huge)]))
        assert store.value_data([H1]) == {}


def test_migrating_keeps_earlier_rows_in_the_default_scope(store_uri) -> None:  # noqa: F811
    engine = create_engine(store_uri)
    try:
        with engine.begin() as connection:
            command.upgrade(alembic_config(connection), "0001")
            connection.execute(
                text(
                    "INSERT INTO kredun_call (eval_hash, task_hash, args_hash, result_hash, "
                    "result_kind) VALUES (:h, :h, :h, :r, 'value')"
                ),
                {"h": H1, "r": H2},
            )
    finally:
        engine.dispose()
    with ProvenanceStore(store_uri) as laptop, ProvenanceStore(store_uri, A) as team_a:
        laptop.ensure_schema()
        assert laptop.lookup_calls([H1])[H1].result_hash == H2
        assert team_a.lookup_calls([H1]) == {}


def test_a_laptop_run_and_a_namespace_do_not_share_calls(tmp_path) -> None:
    stores = {"uri": f"sqlite:///{tmp_path / 'k.db'}"}, {"uri": f"file://{tmp_path / 'v'}"}

    def run(scope: str) -> int:
        config = {"database": stores[0], "value_store": stores[1]}
        scheduler = Scheduler(config={**config, "tenancy": {"cache_scope": scope}})
        try:
            scheduler.run(double(21))
            (latest,) = scheduler.store.recent_executions(1)
            return scheduler.store.job_counts(latest.id)
        finally:
            scheduler.close()

    assert run("") == {"tenancy.double": {"DONE": 1}}
    assert run(A) == {"tenancy.double": {"DONE": 1}}  # ran again: A sees no laptop calls
    assert run(A) == {"tenancy.double": {"CACHED": 1}}
    assert run("") == {"tenancy.double": {"CACHED": 1}}


# -- value references -------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["xx/../../dev/zero", "A" * 40, "1" * 39, "../" * 14 + "ab"])
def test_only_hex_hashes_become_paths_or_keys(tmp_path, bad) -> None:
    store = open_value_store(f"file://{tmp_path}")
    for operation in (store.get, store.exists, lambda h: store.put(h, b"x")):
        with pytest.raises(InvalidHashError, match="is not a value hash"):
            operation(bad)
    with pytest.raises(PlanError, match="40 hex characters"):
        ref_from_json({"hash": bad})
    assert list(tmp_path.iterdir()) == []


def test_reads_stop_at_the_byte_limit(tmp_path) -> None:
    store = open_value_store(f"file://{tmp_path}", A)
    data = b"y" * 1000
    store.put(hash_bytes(data), data)
    assert store.get(hash_bytes(data), max_bytes=1000) == data
    with pytest.raises(LimitExceededError, match="1000 bytes, over the limit of 999"):
        store.get(hash_bytes(data), max_bytes=999)
    assert (tmp_path / "ns" / "team-a").is_dir()


def test_plans_are_fetched_within_their_limit_and_scope(tmp_path, monkeypatch) -> None:
    config = Config(f"sqlite:///{tmp_path / 'k.db'}", f"file://{tmp_path / 'v'}", cache_scope=A)
    plan = b'{"version": 1}'
    open_value_store(config.value_store_uri, A).put(hash_bytes(plan), plan)
    scheduler = Scheduler(config=config)
    other = Scheduler(config=Config(config.database_uri, config.value_store_uri, cache_scope=B))
    try:
        assert fetch_plan(scheduler, hash_bytes(plan)) == plan
        with pytest.raises(ValueNotFoundError):
            fetch_plan(other, hash_bytes(plan))
        monkeypatch.setattr("kredun.domains.MAX_PLAN_BYTES", 10)
        with pytest.raises(LimitExceededError, match="over the limit of 10"):
            fetch_plan(scheduler, hash_bytes(plan))
        with pytest.raises(InvalidHashError):
            fetch_plan(scheduler, "xx/../../dev/zero")
    finally:
        scheduler.close()
        other.close()


# -- the operator -----------------------------------------------------------------------------


def test_the_operator_reads_shared_cache_groups_and_refuses_a_scope_of_its_own() -> None:
    from kredun_operator.errors import SettingsError
    from kredun_operator.settings import settings_from_dict

    stores = {"database": {"uri": "sqlite:////d/k.db"}, "value_store": {"uri": "s3://b/p"}}
    settings = settings_from_dict({**stores, "tenancy": {"shared_cache": {"g": ["a", "b"]}}})
    assert settings.tenancy.scope_of("b") == "shared/g"
    with pytest.raises(SettingsError, match=r"tenancy\.cache_scope is for clients"):
        settings_from_dict({**stores, "tenancy": {"cache_scope": A}})
    with pytest.raises(SettingsError, match="must list at least two namespace names"):
        settings_from_dict({**stores, "tenancy": {"shared_cache": {"g": "a"}}})


def test_an_execution_cannot_set_its_jobs_stores_or_scope() -> None:
    from kredun_operator.errors import SpecError
    from kredun_operator.spec import parse_spec

    for name in ("KREDUN_CACHE_SCOPE", "KREDUN_VALUE_STORE", "KREDUN_DATABASE_URI"):
        spec = {"task": "a.b", "image": "i", "env": [{"name": name, "value": B}]}
        with pytest.raises(SpecError, match=f"spec.env {name}: variables named KREDUN_"):
            parse_spec(spec)
