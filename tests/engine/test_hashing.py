"""`kredun.hashing`: containers hash by structure, not by how they were built; distinct
values that Python calls equal hash apart; deep nesting and the atomic cache stay bounded."""

from __future__ import annotations

from collections import namedtuple

from kredun import hashing
from kredun.hashing import encode, hash_value

Point = namedtuple("Point", "x y")
Pair = namedtuple("Pair", "x y")


def test_equal_containers_built_differently_hash_alike():
    built = []
    for i in range(3):
        built.append({"n": i, "tags": (str(i),)})
    literal = [{"n": 0, "tags": ("0",)}, {"tags": ("1",), "n": 1}, {"n": 2, "tags": ("2",)}]
    assert hash_value(built) == hash_value(literal)
    # A value shared twice hashes as two equal copies.
    shared = [1, 2]
    assert hash_value([shared, shared]) == hash_value([[1, 2], [1, 2]])


def test_dict_and_set_order_do_not_matter_list_order_does():
    keys = [f"k{i}" for i in range(50)]
    forward = {key: i for i, key in enumerate(keys)}
    backward = {key: forward[key] for key in reversed(keys)}
    assert list(forward) != list(backward)
    assert hash_value(forward) == hash_value(backward)
    # Different insertion histories give different iteration orders for these sets.
    assert hash_value(set(keys)) == hash_value(set(reversed(keys)))
    assert hash_value(frozenset(keys)) == hash_value(frozenset(reversed(keys)))
    assert hash_value(keys) != hash_value(list(reversed(keys)))
    # Swapping values between keys changes the dict, though its keys and values don't.
    assert hash_value({"a": 1, "b": 2}) != hash_value({"a": 2, "b": 1})


def test_container_types_are_part_of_the_hash():
    hashes = {
        hash_value(value)
        for value in ([1, 2], (1, 2), {1, 2}, frozenset({1, 2}), Point(1, 2), Pair(1, 2))
    }
    assert len(hashes) == 6
    assert hash_value(Point(1, 2)) == hash_value(Point(x=1, y=2))


def test_equal_but_distinct_atoms_hash_apart():
    assert hash_value(0.0) != hash_value(-0.0)
    assert hash_value(1) != hash_value(True)
    assert hash_value(0) != hash_value(False)
    assert hash_value(1) != hash_value(1.0)
    # Also inside containers, where the atomic cache is used for the elements.
    assert hash_value([1, 0]) != hash_value([True, False])
    assert hash_value({"x": 0.0}) != hash_value({"x": -0.0})


def test_deep_nesting_hashes_without_recursion():
    deep: list = []
    for _ in range(100_000):
        deep = [deep]
    nested: dict = {}
    for i in range(100_000):
        nested = {"child": nested, "i": i}
    assert len(hash_value(deep)) == 40
    assert hash_value(nested) != hash_value(deep)


def test_encode_hash_equals_hash_value():
    values = [
        0,
        -0.0,
        "text",
        b"bytes",
        None,
        "x" * 1000,
        [1, (2, 3), {"a": {4, 5}}],
        Point(1, [2]),
        {frozenset({1}): (None, True)},
        range(3),  # a leaf with no structural hash of its own
    ]
    for value in values:
        digest, data = encode(value)
        assert digest == hash_value(value), value
        assert data


def test_atomic_cache_stays_bounded_and_correct(monkeypatch):
    monkeypatch.setattr(hashing, "_atomic_hashes", {})
    monkeypatch.setattr(hashing, "_ATOMIC_CACHE_LIMIT", 10)
    first = hash_value(0)
    for i in range(25):
        hash_value(i)
        assert len(hashing._atomic_hashes) <= 10
    assert hash_value(0) == first
    # Long strings are not cached: each could be large, and is rarely hashed twice.
    hash_value("y" * 65)
    assert (str, "y" * 65) not in hashing._atomic_hashes
    hash_value("y" * 64)
    assert (str, "y" * 64) in hashing._atomic_hashes
    # Floats are never cached: 0.0 and -0.0 would share one key.
    hash_value(0.5)
    assert not any(kind is float for kind, _ in hashing._atomic_hashes)
