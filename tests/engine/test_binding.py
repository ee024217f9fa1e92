"""`kredun.binding` against what it imitates, Python's own binding (a real call, and
`inspect.Signature.bind` where that agrees with a real call): the same calls accepted,
mapped to the same parameters, and hashed equal exactly when they bind to the same
arguments once defaults are filled in."""

from __future__ import annotations

import inspect
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from kredun.binding import bind, describe_signature, hash_call_arguments
from kredun.hashing import hash_value

P = inspect.Parameter
FAST = settings(max_examples=300, deadline=None)
# Few distinct values, so that an explicit argument often equals the default it replaces.
VALUES = st.integers(0, 2)
NAMES = ["a", "b", "c", "d", "e", "f", "g", "h"]
EXTRA_NAMES = ["x", "rest", "options"]  # unknown names, or the names of *args/**kwargs


@st.composite
def signatures(draw: st.DrawFn) -> inspect.Signature:
    names = iter(draw(st.permutations(NAMES)))
    positional = [
        (next(names), kind)
        for kind in draw(
            st.lists(st.sampled_from([P.POSITIONAL_ONLY, P.POSITIONAL_OR_KEYWORD]), max_size=4)
        )
    ]
    positional.sort(key=lambda pair: pair[1])  # positional-only come first
    # Python allows defaults only on a suffix of the positional parameters.
    first_default = draw(st.integers(0, len(positional)))
    parameters = [
        P(name, kind, default=draw(VALUES) if i >= first_default else P.empty)
        for i, (name, kind) in enumerate(positional)
    ]
    if draw(st.booleans()):
        parameters.append(P("rest", P.VAR_POSITIONAL))
    for _ in range(draw(st.integers(0, 3))):
        default = draw(st.one_of(st.just(P.empty), VALUES))
        parameters.append(P(next(names), P.KEYWORD_ONLY, default=default))
    if draw(st.booleans()):
        parameters.append(P("options", P.VAR_KEYWORD))
    return inspect.Signature(parameters)


calls = st.tuples(
    st.lists(VALUES, max_size=6),
    st.dictionaries(st.sampled_from(NAMES + EXTRA_NAMES), VALUES, max_size=5),
)


def function_with(signature: inspect.Signature) -> Any:
    """A real function with this signature that returns what it was called with."""
    namespace: dict[str, Any] = {}
    exec(f"def f{signature}:\n    return dict(locals())", namespace)
    return namespace["f"]


def call_really(signature: inspect.Signature, args: list, kwargs: dict) -> dict | None:
    """What a real call binds, defaults filled in, or None when Python refuses the call.

    The ground truth: `inspect.Signature.bind` wrongly refuses a keyword that names a
    positional-only parameter with a default when **kwargs could take it (CPython
    gh-87106, fixed in 3.12, then regressed the other way in gh-130164).
    """
    try:
        return function_with(signature)(*args, **kwargs)
    except TypeError:
        return None


def inspect_bind(signature: inspect.Signature, args: list, kwargs: dict) -> dict | None:
    """What `inspect` binds (defaults not filled in), with *args and **kwargs always
    present as kredun has them, or None when it refuses the call."""
    try:
        bound = signature.bind(*args, **kwargs)
    except TypeError:
        return None
    arguments = dict(bound.arguments)
    for parameter in signature.parameters.values():
        if parameter.kind is P.VAR_POSITIONAL:
            arguments.setdefault(parameter.name, ())
        elif parameter.kind is P.VAR_KEYWORD:
            arguments.setdefault(parameter.name, {})
    return arguments


def with_defaults(signature: inspect.Signature, bound: dict) -> dict:
    return {
        name: bound.get(name, parameter.default) for name, parameter in signature.parameters.items()
    }


def complete(signature: inspect.Signature, args: list, kwargs: dict) -> tuple | None:
    """What the call means once defaults are filled in, comparable across calls."""
    arguments = call_really(signature, args, kwargs)
    if arguments is None:
        return None
    return tuple(
        (name, tuple(sorted(value.items())) if isinstance(value, dict) else value)
        for name, value in arguments.items()
    )


def hash_of(signature: inspect.Signature, args: list, kwargs: dict) -> str:
    return hash_call_arguments(
        describe_signature(signature),
        [hash_value(value) for value in args],
        {name: hash_value(value) for name, value in kwargs.items()},
    )


def most_explicit(signature: inspect.Signature, values: dict) -> tuple[list, dict]:
    """A call binding to `values` (every parameter's value) with every default written
    out, every argument that may be given by name given by name, and **kwargs reversed."""
    kinds = {p.name: p.kind for p in signature.parameters.values()}
    varargs = next((values[n] for n, k in kinds.items() if k is P.VAR_POSITIONAL), ())
    positional: list = []
    named: dict = {}
    for name, kind in kinds.items():
        # Before a non-empty *args, a parameter must be filled by position.
        if kind is P.POSITIONAL_ONLY or (kind is P.POSITIONAL_OR_KEYWORD and varargs):
            positional.append(values[name])
        elif kind is P.VAR_POSITIONAL:
            positional.extend(values[name])
        elif kind is P.VAR_KEYWORD:
            # In the opposite order: the order keywords are written in means nothing.
            named.update(reversed(values[name].items()))
        else:
            named[name] = values[name]
    return positional, named


@FAST
@given(signatures(), calls)
def test_bind_accepts_and_maps_calls_as_python_does(signature, call):
    args, kwargs = call
    expected = call_really(signature, args, kwargs)
    parameters = describe_signature(signature)
    if expected is None:
        try:
            bind(parameters, args, kwargs)
        except TypeError:
            return
        raise AssertionError(f"{signature} accepted ({args}, {kwargs}); Python refuses it")
    bound = bind(parameters, args, kwargs)
    assert with_defaults(signature, bound) == expected
    by_inspect = inspect_bind(signature, args, kwargs)
    if by_inspect is not None:
        assert bound == by_inspect


@FAST
@given(signatures(), calls)
def test_hash_ignores_how_arguments_are_spelled(signature, call):
    args, kwargs = call
    values = call_really(signature, args, kwargs)
    if values is None:
        return
    explicit_args, explicit_kwargs = most_explicit(signature, values)
    assert call_really(signature, explicit_args, explicit_kwargs) == values
    assert hash_of(signature, args, kwargs) == hash_of(signature, explicit_args, explicit_kwargs)


@FAST
@given(signatures(), calls, calls)
def test_hashes_equal_exactly_when_calls_bind_alike(signature, first, second):
    meanings = [complete(signature, *first), complete(signature, *second)]
    if None in meanings:
        return
    same = meanings[0] == meanings[1]
    assert (hash_of(signature, *first) == hash_of(signature, *second)) == same


def test_positional_and_keyword_spellings_hash_alike():
    """The cases the property tests generate, written out once so a failure reads plainly."""

    def f(a, /, b, c=2, *, d=3, **options):
        pass

    signature = inspect.signature(f)
    base = hash_of(signature, [0, 1], {})
    assert hash_of(signature, [0], {"b": 1}) == base
    assert hash_of(signature, [0, 1, 2], {"d": 3}) == base
    assert hash_of(signature, [0, 1], {"options": 5}) != base
    assert hash_of(signature, [0, 1], {"d": 4}) != base
    # A positional-only name given by keyword goes to **options, not to the parameter.
    assert bind(describe_signature(signature), [0, 1], {"a": 9}) == {
        "a": 0,
        "b": 1,
        "options": {"a": 9},
    }


def test_keyword_naming_a_defaulted_positional_only_parameter_goes_to_kwargs():
    """Where `inspect.Signature.bind` on Python 3.11 refuses a call Python accepts."""

    def f(a=0, /, **options):
        return a, options

    assert f(a=5) == (0, {"a": 5})
    parameters = describe_signature(inspect.signature(f))
    assert bind(parameters, [], {"a": 5}) == {"options": {"a": 5}}
    assert hash_call_arguments(parameters, [], {"a": hash_value(5)}) != hash_call_arguments(
        parameters, [hash_value(5)], {}
    )
