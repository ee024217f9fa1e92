"""The expression graph the scheduler reduces.

An expression (nested task calls, simple operations and containers) becomes a DAG of
`Node`s. A node knows how many children are still unresolved; when that count reaches
zero it is ready to reduce. Building and resolving are iterative, never recursive, so a
100,000-deep chain needs no special recursion limit.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar

from .expression import (
    SIMPLE_OPERATIONS,
    Expression,
    SchedulerExpression,
    SimpleExpression,
    TaskExpression,
    ValueExpression,
)
from .hashing import combine_container_hash, hash_value, is_namedtuple

T = TypeVar("T")

# Node kinds.
VALUE = "value"  # a concrete value
CALL = "call"  # a task call; children: positional then keyword arguments
OP = "op"  # a SimpleExpression; children: its arguments
LIST, TUPLE, SET, DICT, NAMEDTUPLE = "list", "tuple", "set", "dict", "namedtuple"
FORWARD = "forward"  # takes the value of its one child (a job's returned expression)
LIFTED = "lifted"  # the value of a ValueExpression: resolved from the start
CONTROL = "control"  # a scheduler task's call (cond, catch, ...): its handler decides
CONTINUE = "continue"  # runs a scheduler task's continuation with its one child's value
FINAL = "final"  # takes its one child's value, recorded as the final value of a job (payload)
DATACLASS = "dataclass"  # a dataclass instance holding expressions; children: its fields

# Values that can never hold an expression: containers of only these need no graph nodes.
_ATOMIC = (int, float, str, bytes, bool, type(None), complex)


class Node:
    # "producer" (the id of the job whose result a node took; provenance's call graph) is
    # set only on such nodes and read with getattr, so other nodes pay nothing for it.
    __slots__ = (
        "children", "failed", "hash", "kind", "owner", "parents", "payload", "producer",
        "resolved", "value", "waiting",
    )  # fmt: skip

    def __init__(self, kind: str, payload: Any = None, children: list[Node] | None = None):
        self.kind = kind
        self.owner: Any = None  # CALL nodes: the job whose returned expression created them
        self.payload = payload  # CALL, OP: the expression; NAMEDTUPLE: its type
        self.children = children or []
        self.parents: list[Node] = []
        self.waiting = 0
        self.resolved = kind == VALUE
        self.value: Any = payload if kind == VALUE else None
        self.hash: str | None = None
        self.failed = False

    def value_hash(self) -> str:
        """The content hash of the resolved value, computed once."""
        if self.hash is None:
            if self.kind in _CONTAINER_TAGS:
                self.hash = combine_container_hash(
                    _container_tag(self), [child.value_hash() for child in self.children]
                )
            elif self.kind == FORWARD:
                self.hash = self.children[0].value_hash()
            else:
                self.hash = hash_value(self.value)
        return self.hash


_CONTAINER_TAGS = {LIST, TUPLE, SET, DICT, NAMEDTUPLE}


def _container_tag(node: Node) -> str:
    if node.kind == NAMEDTUPLE:
        return f"namedtuple:{namedtuple_name(node.payload)}"
    return node.kind


def namedtuple_name(payload: Any) -> str:
    """`module.QualName` of a namedtuple node's type (a class, or a plan's type reference)."""
    if isinstance(payload, type):
        return f"{payload.__module__}.{payload.__qualname__}"
    return payload.type_name


def shape(obj: Any) -> tuple[str, Any, list[Any]] | None:
    """(kind, payload, child objects) for objects that may hold expressions, else None."""
    kind = type(obj)
    if isinstance(obj, TaskExpression):
        return CALL, obj, [*obj.args, *obj.kwargs.values()]
    if isinstance(obj, SimpleExpression):
        return OP, obj, [*obj.args, *obj.kwargs.values()]
    if isinstance(obj, SchedulerExpression):
        return CONTROL, obj, []  # a scheduler task evaluates its arguments itself
    if kind is list or kind is tuple or kind is set:
        if all(type(item) in _ATOMIC for item in obj):
            return None
        return kind.__name__, None, list(obj)
    if kind is dict:
        if all(type(v) in _ATOMIC for v in obj.values()) and all(type(k) in _ATOMIC for k in obj):
            return None
        return DICT, None, [part for pair in obj.items() for part in pair]
    if is_namedtuple(obj):
        return NAMEDTUPLE, kind, list(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type) and _holds_expression(obj):
        # As in redun, fields holding expressions are evaluated. Only then is it a container:
        # a plain dataclass stays a value, hashed and shipped as before.
        return DATACLASS, obj, [getattr(obj, field.name) for field in dataclasses.fields(obj)]
    return None


def _holds_expression(obj: Any) -> bool:
    """`contains_expression` for a dataclass, walking nested dataclasses here rather than
    through `shape`, which would recurse once per level of nesting."""
    stack = [obj]
    while stack:
        item = stack.pop()
        if isinstance(item, Expression):
            return True
        if dataclasses.is_dataclass(item) and not isinstance(item, type):
            stack.extend(getattr(item, field.name) for field in dataclasses.fields(item))
            continue
        found = shape(item)
        if found is not None:
            stack.extend(found[2])
    return False


def contains_expression(obj: Any) -> bool:
    """Whether a value still needs evaluating (a task result that returned expressions)."""
    stack = [obj]
    while stack:
        item = stack.pop()
        if isinstance(item, Expression):
            return True
        found = shape(item)
        if found is not None:
            stack.extend(found[2])
    return False


def fold(
    root: Any,
    leaf: Callable[[Any], T],
    branch: Callable[[Any, str, Any, list[T]], T],
    lift: Callable[[Any], T] | None = None,
) -> T:
    """Fold an expression bottom-up without recursion: `leaf(value)` for values, and
    `branch(obj, kind, payload, folded_children)` for calls, operations and containers
    holding expressions. The same object (e.g. one call used twice) is folded once.
    A ValueExpression folds as its value, through `lift` when given (else `leaf`)."""
    memo: dict[int, T] = {}
    folded: list[T] = []  # post-order results
    stack: list[tuple[Any, tuple | None]] = [(root, None)]
    while stack:
        obj, found = stack.pop()
        if found is None:
            if id(obj) in memo:
                folded.append(memo[id(obj)])
                continue
            found = shape(obj)
            if found is None:
                if type(obj) is ValueExpression:
                    folded.append((lift or leaf)(obj.value))
                else:
                    folded.append(leaf(obj))
                continue
            stack.append((obj, found))
            stack.extend((child, None) for child in reversed(found[2]))
            continue
        kind, payload, child_objects = found
        count = len(child_objects)
        children = folded[len(folded) - count :] if count else []
        del folded[len(folded) - count :]
        memo[id(obj)] = result = branch(obj, kind, payload, children)
        folded.append(result)
    return folded[0]


def build(root: Any, owner: Any = None) -> tuple[Node, list[Node]]:
    """Turn an expression into nodes. Returns the root node and the nodes ready to reduce.

    `owner` is the job that returned the expression (None for the root of an execution).
    """
    ready: list[Node] = []

    def branch(obj: Any, kind: str, payload: Any, children: list[Node]) -> Node:
        if kind not in (CALL, OP, CONTROL) and all(child.kind == VALUE for child in children):
            return Node(VALUE, obj)  # a container with nothing left to evaluate
        node = Node(kind, payload, children)
        node.owner = owner
        for child in children:
            if not child.resolved:
                child.parents.append(node)
                node.waiting += 1
        if node.waiting == 0:
            ready.append(node)
        return node

    root_node = fold(root, lambda value: Node(VALUE, value), branch, _lifted)
    return root_node, ready


def _lifted(value: Any) -> Node:
    # Resolved like a value, but not VALUE: a container holding a ValueExpression must be
    # assembled from its children's values, not kept as the object written.
    node = Node(VALUE, value)
    node.kind = LIFTED
    return node


def assemble(node: Node) -> Any:
    """The value of a ready container, operation or forward node from its children's values."""
    values = [child.value for child in node.children]
    kind = node.kind
    if kind == LIST:
        return values
    if kind == TUPLE:
        return tuple(values)
    if kind == SET:
        return set(values)
    if kind == DICT:
        return dict(zip(values[0::2], values[1::2], strict=True))
    if kind == NAMEDTUPLE:
        return node.payload(*values)
    if kind == DATACLASS:
        # A copy with evaluated fields, set directly: __init__ may take other arguments
        # (init=False fields, InitVars) and a frozen dataclass refuses setattr.
        assembled = copy.copy(node.payload)
        for field, value in zip(dataclasses.fields(assembled), values, strict=True):
            object.__setattr__(assembled, field.name, value)
        return assembled
    if kind == FORWARD:
        return values[0]
    if kind == OP:
        expr: SimpleExpression = node.payload
        positional = values[: len(expr.args)]
        named = dict(zip(expr.kwargs, values[len(expr.args) :], strict=True))
        return SIMPLE_OPERATIONS[expr.func_name](*positional, **named)
    raise ValueError(f"node kind {kind!r} is not assembled")


def call_arguments(node: Node) -> tuple[list[Any], dict[str, Any], list[Node], dict[str, Node]]:
    """A ready CALL node's argument values and argument nodes, positional and keyword."""
    expr: TaskExpression = node.payload
    split = len(expr.args)
    positional_nodes = node.children[:split]
    keyword_nodes = dict(zip(expr.kwargs, node.children[split:], strict=True))
    return (
        [child.value for child in positional_nodes],
        {name: child.value for name, child in keyword_nodes.items()},
        positional_nodes,
        keyword_nodes,
    )
