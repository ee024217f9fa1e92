"""`kredun.graph`: folding expressions bottom-up without recursion, building the node graph
the scheduler reduces (what is ready, what waits), and assembling ready nodes' values."""

from __future__ import annotations

from collections import namedtuple

import pytest
from kredun import ValueExpression, quote, task
from kredun.expression import SchedulerExpression, SimpleExpression
from kredun.graph import (
    CALL,
    CONTROL,
    DICT,
    FORWARD,
    LIFTED,
    LIST,
    NAMEDTUPLE,
    OP,
    SET,
    TUPLE,
    VALUE,
    Node,
    assemble,
    build,
    contains_expression,
    fold,
)
from kredun.hashing import hash_value

kredun_namespace = "graph_test"

Point = namedtuple("Point", "x y")
DIVMOD_BY_NAME = SimpleExpression(
    "call", (ValueExpression(divmod),), {"args": (7, 2), "kwargs": {}}
)


@task()
def add(a: int, b: int) -> int:
    return a + b


def same_objects(found, expected):
    # By identity: `==` on expressions builds a lazy comparison, which has no truth value.
    return len(found) == len(expected) and all(a is b for a, b in zip(found, expected, strict=True))


def describe(expr):
    """Fold into a readable string, recording the order branches are folded in."""
    order = []

    def branch(obj, kind, payload, children):
        text = f"{kind}({', '.join(children)})"
        order.append(text)
        return text

    return fold(expr, repr, branch), order


def test_fold_is_post_order():
    expr = add(add(1, 2), [3, add(4, 5)])
    result, order = describe(expr)
    assert result == "call(call(1, 2), list(3, call(4, 5)))"
    assert order == ["call(1, 2)", "call(4, 5)", "list(3, call(4, 5))", result]


def test_fold_folds_a_shared_object_once():
    shared = add(1, 2)
    folded = []

    def branch(obj, kind, payload, children):
        folded.append((obj, children))
        return object()  # a fresh result each time, so reuse shows by identity

    outer = add(shared, [shared])
    fold(outer, lambda value: value, branch)
    assert same_objects([obj for obj, _ in folded], [shared, outer.args[1], outer])
    (_, call_children), (_, list_children), (_, outer_children) = folded
    assert call_children == [1, 2]
    assert outer_children[0] is list_children[0]


def test_fold_lifts_value_expressions():
    folded = fold(
        [ValueExpression(7), add(1, 2)],
        leaf=lambda value: ("leaf", value),
        branch=lambda obj, kind, payload, children: children,
        lift=lambda value: ("lifted", value),
    )
    assert folded[0] == ("lifted", 7)
    assert fold(ValueExpression(7), leaf=lambda v: ("leaf", v), branch=None) == ("leaf", 7)


def test_fold_and_build_a_100000_deep_chain_without_recursion():
    expr = 0
    for _ in range(100_000):
        expr = add(expr, 1)
    depth = fold(expr, lambda value: 0, lambda obj, kind, payload, children: children[0] + 1)
    assert depth == 100_000
    root, ready = build(expr)
    assert len(ready) == 1 and ready[0].children[0].value == 0
    assert root.kind == CALL and root.waiting == 1


def test_build_marks_ready_and_waiting_nodes():
    left, right = add(1, 2), add(3, 4)
    owner = object()
    root, ready = build(add(left, right), owner=owner)
    assert root.kind == CALL and same_objects(root.payload.args, (left, right))
    assert root.waiting == 2 and not root.resolved
    assert same_objects([node.payload for node in ready], [left, right])
    for node in ready:
        assert node.waiting == 0
        assert node.parents == [root]
        assert node.owner is owner
        assert all(child.kind == VALUE and child.resolved for child in node.children)


def test_build_counts_one_wait_per_child_node():
    shared = add(1, 2)
    root, ready = build([shared, shared, 3])
    assert root.kind == LIST
    assert len(ready) == 1
    # The shared call is one node, waited on twice by the list (once per position).
    assert root.children[0] is root.children[1] is ready[0]
    assert root.waiting == 2


def test_build_collapses_containers_holding_only_values():
    value = [1, (2, "x"), {"a": [3, {4}]}, Point(5, [6])]
    root, ready = build(value)
    assert root.kind == VALUE and root.resolved
    assert root.value is value
    assert ready == []
    # A container with an expression inside is kept, its value-only parts collapsed.
    call = add(1, 2)
    root, ready = build({"done": [1, 2], "todo": call})
    assert root.kind == DICT and root.waiting == 1
    kinds = [child.kind for child in root.children]
    assert kinds == [VALUE, VALUE, VALUE, CALL]
    assert same_objects([node.payload for node in ready], [call])


def test_build_keeps_containers_of_lifted_values_as_ready_nodes():
    root, ready = build([ValueExpression(5), 1])
    assert root.kind == LIST
    assert root.children[0].kind == LIFTED and root.children[0].resolved
    assert ready == [root]
    assert assemble(root) == [5, 1]


def test_build_makes_scheduler_calls_control_nodes_without_children():
    expr = SchedulerExpression(None, (add(1, 2),), {})
    root, ready = build([expr])
    control = root.children[0]
    assert control.kind == CONTROL and control.children == []
    assert ready == [control]


@pytest.mark.parametrize(
    ("expr", "kind", "expected"),
    [
        ([ValueExpression(1), 2], LIST, [1, 2]),
        ((ValueExpression(1), 2), TUPLE, (1, 2)),
        ({ValueExpression(1), 2}, SET, {1, 2}),
        ({"a": ValueExpression(1), "b": 2}, DICT, {"a": 1, "b": 2}),
        (Point(ValueExpression(1), 2), NAMEDTUPLE, Point(1, 2)),
        (ValueExpression(2) + 3, OP, 5),
        (ValueExpression([4, 5])[1], OP, 5),
        # Keyword arguments of an operation follow its positional ones among the children.
        (DIVMOD_BY_NAME, OP, (3, 1)),
    ],
)
def test_assemble_each_kind(expr, kind, expected):
    root, ready = build(expr)
    assert root.kind == kind and ready == [root]
    value = assemble(root)
    assert value == expected and type(value) is type(expected)
    if kind != OP:
        # The node's structural hash agrees with hashing the assembled value.
        assert root.value_hash() == hash_value(expected)


def test_assemble_forward_and_refuse_other_kinds():
    forward = Node(FORWARD, children=[Node(VALUE, "result")])
    assert assemble(forward) == "result"
    assert forward.value_hash() == hash_value("result")
    root, _ = build(add(1, 2))
    with pytest.raises(ValueError, match="call"):
        assemble(root)


def test_contains_expression():
    assert not contains_expression(1)
    assert not contains_expression([1, (2, {"a": {3}})])
    assert not contains_expression(quote(add(1, 2)))  # quoted: carried as a plain value
    assert contains_expression(add(1, 2))
    assert contains_expression(ValueExpression(1))
    assert contains_expression([1, (2, {"a": [Point(3, add(1, 2))]})])
    assert contains_expression({"key": [ValueExpression(1)]})
