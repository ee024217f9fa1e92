"""Plans: the JSON form of an expression graph, for places that must not unpickle.

The SDK encodes an expression into a plan when it submits to a cluster, and a worker
encodes the expression a task returned. The operator decodes plans into scheduler nodes
whose values are references; it never sees a Python object a user made.

    {"version": 1,
     "tasks": {"<task hash>": {"name": "ns.add", "module": "wf", "params": [[name, kind,
               default_hash], ...], "options": {...}, "code": <ref> | null}},
     "nodes": [{"value": <ref>},
               {"call": "<task hash>", "args": [0, 1], "kwargs": {"b": 2}, "options": {}},
               {"op": "getitem", "args": [3, 4], "kwargs": {}},
               {"list": [0, 1]}, {"tuple": [...]}, {"set": [...]}, {"dict": [k, v, ...]},
               {"namedtuple": [...], "type": <ref>, "type_name": "module.Name"},
               {"control": "kredun.cond", "args": [{"plan": <plan>}, ...], "kwargs": {}}],
     "root": 5}

Children always precede their parents, so a plan is acyclic by construction and decodes in
one forward pass.

A control node is a call of a scheduler task (cond, catch, catch_all, seq, map_): its
handler evaluates some arguments only after seeing others, so each argument is a
self-contained plan of its own, decoded only when the handler evaluates it. An argument is
`{"plan": <plan>}`, `{"plans": [<plan>, ...]}` (seq's expressions; `"items"`: map_'s),
`{"terms": ...}` (catch_all's: plans nested in lists, tuples and text-keyed dicts),
`{"classes": ["module.QualName", ...]}` (exception classes, matched by name against the
class names a failing job reports), or `{"function": <plan>}`: a plan with one
`{"parameter": 0}` node, called by giving it a value (a catch's recovery, with the error)
or by splicing a plan in its place (map_'s task, with an item).
A value node may carry `"truth"`: bool(value), computed where the value was made, so
the operator can choose a branch without loading the value.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from . import graph
from .binding import PARAMETER_KINDS, Parameter, bind, hash_call_arguments
from .builtins import call_by_name, files_valid, map_items, simple_op
from .errors import PlanError
from .expression import SimpleExpression, TaskExpression
from .hashing import encode, hash_bytes, hash_parts
from .refs import DEFERRED_OPERATIONS, CompositeRef, DeferredRef, Ref, ValueRef, ref_from_json
from .serialize import shipping
from .task import changed_tasks, collecting_task_values

PLAN_VERSION = 1
INLINE_LIMIT = 4096  # bytes of a serialized value kept inside the plan itself
MAX_PLAN_NODES = 1_000_000

StoreBlob = Callable[[str, bytes], None]


@dataclass
class TaskRef:
    """A task as a plan names it: enough to hash and schedule calls, nothing to run them."""

    fullname: str
    hash: str
    module: str
    parameters: list[Parameter]
    code: ValueRef | None = None
    option_values: dict[str, Any] = field(default_factory=dict)

    @property
    def namespace(self) -> str:
        return self.fullname.rpartition(".")[0]

    @property
    def name(self) -> str:
        return self.fullname.rpartition(".")[2]

    source = ""

    @property
    def default_values(self) -> dict[str, Any]:
        return {}  # a plan knows defaults only by hash

    def get_option(self, key: str, default: Any = None) -> Any:
        return self.option_values.get(key, default)

    def options(self, **options: Any) -> TaskRef:
        return TaskRef(
            self.fullname, self.hash, self.module, self.parameters, self.code,
            {**self.option_values, **options},
        )  # fmt: skip

    def hash_arguments(self, positional: list[str], named: dict[str, str]) -> str:
        return hash_call_arguments(self.parameters, positional, named)

    def bind(self, args: tuple, kwargs: dict) -> dict[str, Any]:
        return bind(self.parameters, list(args), kwargs)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.fullname,
            "module": self.module,
            "params": [list(parameter) for parameter in self.parameters],
            "options": self.option_values,
            "code": self.code.to_json() if self.code else None,
        }


@dataclass
class PlannedCall:
    """A call node's payload from a plan; shaped like a TaskExpression for the scheduler."""

    task: TaskRef
    args: tuple
    kwargs: dict[str, None]

    def __repr__(self) -> str:
        return f"TaskExpression({self.task.fullname!r}, <{len(self.args)} args>, ...)"


@dataclass(frozen=True)
class PlannedOp:
    """An operation node's payload from a plan: its name and keyword argument names."""

    name: str
    kwargs: list[str]


@dataclass(frozen=True)
class NamedTupleType:
    type_ref: ValueRef
    type_name: str


@dataclass(frozen=True)
class PlannedControl:
    """A control node's payload from a plan; shaped like a SchedulerExpression for the
    scheduler (its arguments are plans, class names and functions, decoded lazily)."""

    task: Any  # kredun.control.SchedulerTask
    args: tuple
    kwargs: dict[str, Any]


@dataclass(frozen=True)
class ErrorClassNames:
    """Exception classes as a plan names them: qualified names (`builtins.ValueError`)."""

    names: tuple[str, ...]

    def __kredun_hash__(self) -> str:
        return hash_parts("error-classes", list(self.names))


@dataclass(frozen=True)
class SubPlan:
    """A control node's argument: a plan the handler may evaluate. `where` names it in the
    plan that holds it, for errors found only when it is decoded."""

    plan: dict[str, Any]
    where: str = ""

    def __kredun_hash__(self) -> str:
        return hash_parts("sub-plan", [_plan_identity(self.plan)])


@dataclass(frozen=True)
class PlanFunction:
    """A plan with a parameter node: called by giving the parameter a value."""

    plan: dict[str, Any]

    def __kredun_hash__(self) -> str:
        return hash_parts("plan-function", [_plan_identity(self.plan)])


def _plan_identity(plan: dict[str, Any]) -> str:
    """The hash of a plan as the scheduler sees it. Task code references are left out: a
    task is its hash, as in a call's eval hash (shipped code also holds the globals it
    uses, which may be other tasks, edited or not), and a replayed call resolves each task
    name to the current code anyway."""

    def without_code(item: Any) -> Any:
        if isinstance(item, list):
            return [without_code(part) for part in item]
        if not isinstance(item, dict):
            return item
        return {
            key: {name: _without_key(task, "code") for name, task in value.items()}
            if key == "tasks" and isinstance(value, dict)
            else without_code(value)
            for key, value in item.items()
        }

    try:
        return hash_bytes(dumps_plan(without_code(plan)))
    except RecursionError:
        raise PlanError("a control node's plan is nested too deeply to read") from None


def _without_key(item: Any, key: str) -> Any:
    return {k: v for k, v in item.items() if k != key} if isinstance(item, dict) else item


class _Parameter:
    """Stands for the argument of a function plan while the SDK encodes it."""

    def __repr__(self) -> str:
        return "<parameter>"


PARAMETER = _Parameter()
MAX_ERROR_CLASSES = 32  # exception classes one catch clause may name


def json_options(options: dict[str, Any]) -> dict[str, Any]:
    safe = {}
    for key, value in options.items():
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            continue
        safe[key] = value
    return safe


# -- encoding (trusted side: SDK and workers) -------------------------------------------------


class _Encoder:
    def __init__(self, store_blob: StoreBlob, task_code: Callable[[Any], bytes] | None) -> None:
        self.store_blob = store_blob
        self.task_code = task_code
        self.tasks: dict[str, dict[str, Any]] = {}
        self.nodes: list[dict[str, Any]] = []

    def value_node(self, value: Any) -> dict[str, Any]:
        if value is PARAMETER:
            return {"parameter": 0}
        with collecting_task_values() as task_values:
            node = {"value": self.value_ref(value)}
        if task_values:
            # The scheduler cannot look inside the value: it learns here which task
            # definitions the value holds, to tell when a cached fragment went stale.
            node["tasks"] = task_values
        return node

    def value_ref(self, value: Any) -> dict[str, Any]:
        with shipping():  # a plan's values go to job processes (a subrun's expression, say)
            value_hash, data = encode(value)
        if len(data) <= INLINE_LIMIT:
            return ValueRef(value_hash, data).to_json()
        self.store_blob(value_hash, data)
        return ValueRef(value_hash).to_json()

    def task_key(self, task: Any) -> str:
        if task.hash not in self.tasks:
            code = None
            if self.task_code is not None:
                data = self.task_code(task)
                code = self.value_ref_from_bytes(data)
            self.tasks[task.hash] = TaskRef(
                task.fullname, task.hash, getattr(task.func, "__module__", ""), task.parameters,
                code, json_options(task.option_values),
            ).to_json()  # fmt: skip
        return task.hash

    def value_ref_from_bytes(self, data: bytes) -> ValueRef:
        blob_hash = hash_bytes(data)
        self.store_blob(blob_hash, data)
        return ValueRef(blob_hash)

    def node(self, kind: str, payload: Any, children: list[int], obj: Any) -> dict[str, Any]:
        if kind == graph.CONTROL:
            return self.control_node(obj)
        if kind == graph.CALL:
            expr: TaskExpression = obj
            from_context = getattr(expr.task, "context_options", None)
            if from_context:
                raise PlanError(
                    f"{expr.task.fullname}(): options read from the context "
                    f"({', '.join(sorted(from_context))}) cannot run on a cluster yet: "
                    "give them values"
                )
            split = len(expr.args)
            return {
                "call": self.task_key(expr.task),
                "args": children[:split],
                "kwargs": dict(zip(expr.kwargs, children[split:], strict=True)),
                "options": json_options(expr.task.option_values),
            }
        if kind == graph.OP:
            simple: SimpleExpression = obj
            split = len(simple.args)
            return {
                "op": simple.func_name,
                "args": children[:split],
                "kwargs": dict(zip(simple.kwargs, children[split:], strict=True)),
            }
        if kind == graph.DATACLASS:
            raise PlanError(
                f"a {type(obj).__qualname__} dataclass holding expressions cannot run on a "
                "cluster yet: pass its fields to a task that builds it from their values"
            )
        if kind == graph.NAMEDTUPLE:
            return {
                "namedtuple": children,
                "type": self.value_ref(payload),
                "type_name": graph.namedtuple_name(payload),
            }
        return {kind: children}

    def control_node(self, expr: Any) -> dict[str, Any]:
        fullname = expr.task.fullname
        if fullname not in PLANNED_CONTROL or expr.kwargs:
            raise PlanError(
                f"{fullname}() cannot run on a cluster yet: plans carry only "
                f"{', '.join(sorted(PLANNED_CONTROL))} among the scheduler tasks"
            )
        args = expr.args
        if fullname == "kredun.catch_all" and len(args) == 3 and args[2] is None:
            args = args[:1]  # no recovery: the error class goes unused
        kinds = PLANNED_CONTROL[fullname](len(args))
        return {
            "control": fullname,
            "args": [self.control_argument(k, a) for k, a in zip(kinds, args, strict=True)],
            "kwargs": {},
        }

    def control_argument(self, kind: str, value: Any) -> dict[str, Any]:
        if kind == "classes":
            classes = value if isinstance(value, tuple) else (value,)
            if not all(isinstance(cls, type) for cls in classes):
                raise PlanError(
                    f"on a cluster, exception classes must be written in the workflow, "
                    f"not computed: {value!r}"
                )
            return {"classes": [f"{cls.__module__}.{cls.__qualname__}" for cls in classes]}
        if kind == "function":
            return {"function": self.sub_plan(_applied(value))}
        if kind == "terms":
            return {"terms": self.terms(value)}
        if kind in ("plans", "items"):
            if not isinstance(value, list | tuple):
                user = "seq" if kind == "plans" else "map_"
                raise PlanError(
                    f"kredun.{user}() on a cluster takes a list written in the workflow, not "
                    f"{type(value).__name__}"
                )
            return {kind: [self.sub_plan(item) for item in value]}
        sub_plan = self.sub_plan(value)
        root = sub_plan["nodes"][sub_plan["root"]]
        if "value" in root:
            # A literal's truth is known here, where the value is: the operator may not load
            # it. Without one (bool() raised), a cond on it is tested, and fails, in a job.
            with contextlib.suppress(Exception):
                root["truth"] = bool(value)
        return {"plan": sub_plan}

    def sub_plan(self, value: Any) -> dict[str, Any]:
        return encode_plan(value, self.store_blob, self.task_code)

    def terms(self, value: Any) -> dict[str, Any]:
        """catch_all's nested expressions: lists, tuples and dicts with text keys, each
        item a plan of its own (each is evaluated, failing or not, on its own)."""
        kind = type(value)
        if kind is list or kind is tuple:
            return {kind.__name__: [self.terms(item) for item in value]}
        if kind is dict:
            if not all(isinstance(key, str) for key in value):
                raise PlanError("kredun.catch_all() on a cluster takes dicts with text keys")
            return {"dict": [[key, self.terms(item)] for key, item in value.items()]}
        return {"plan": self.sub_plan(value)}


def _map_over_computed_list(expr: Any) -> Any:
    """`map_(task, values)` whose values a task computes, as a call of the built-in
    `map_items` that makes the calls in a job (the operator never looks inside a value);
    None for any other scheduler task's call."""
    from .expression import Expression
    from .task import PartialTask, Task

    if expr.task.fullname != "kredun.map_" or len(expr.args) != 2 or expr.kwargs:
        return None
    function, values = expr.args
    if isinstance(values, list | tuple) or not isinstance(values, Expression):
        return None
    if not isinstance(function, Task | PartialTask):
        raise PlanError(
            "kredun.map_() on a cluster over a list a task computes takes a task (or a "
            f"partial) written in the workflow, not {type(function).__name__}"
        )
    return map_items(function, values)


def _applied(function: Any) -> Any:
    """`function(PARAMETER)` as an expression, without calling anything a user wrote: a
    task's call is an expression already; any other callable is called in a job."""
    from .expression import SimpleExpression
    from .task import PartialTask, Task

    if isinstance(function, Task | PartialTask):
        return function(PARAMETER)
    return SimpleExpression("call", (function, (PARAMETER,), {}), {})


def _catch_arguments(count: int) -> list[str]:
    return ["plan", *(["classes", "function"] * ((count - 1) // 2))]


# The scheduler tasks a plan may call, and the kind of each of their arguments by count.
PLANNED_CONTROL: dict[str, Callable[[int], list[str]]] = {
    "kredun.cond": lambda count: ["plan"] * count if count >= 2 else [],
    "kredun.catch": _catch_arguments,
    "kredun.seq": lambda count: ["plans"] if count == 1 else [],
    "kredun.map_": lambda count: ["function", "items"] if count == 2 else [],
    "kredun.catch_all": lambda count: (
        ["terms", "classes", "function"][:count] if count in (1, 3) else []
    ),
}


def encode_plan(
    expr: Any,
    store_blob: StoreBlob,
    task_code: Callable[[Any], bytes] | None = None,
    registry: Iterable[Any] = (),
) -> dict[str, Any]:
    """The plan of an expression. Values over INLINE_LIMIT go through `store_blob(hash,
    bytes)`; `task_code(task)` serializes a task's code (None: workers import by name).
    `registry`: the current definitions of tasks, by which the scheduler resolves calls in
    cached results (a call names its task; the name denotes the current code)."""
    encoder = _Encoder(store_blob, task_code)
    current = {task.fullname: encoder.task_key(task) for task in registry}

    def add(node: dict[str, Any]) -> int:
        encoder.nodes.append(node)
        return len(encoder.nodes) - 1

    def leaf(value: Any) -> int:
        return add(encoder.value_node(value))

    def branch(obj: Any, kind: str, payload: Any, children: list[int]) -> int:
        if kind == graph.CONTROL:
            replacement = _map_over_computed_list(obj)
            if replacement is not None:
                return graph.fold(replacement, leaf, branch)
        return add(encoder.node(kind, payload, children, obj))

    root = graph.fold(expr, leaf, branch)
    plan = {"version": PLAN_VERSION, "tasks": encoder.tasks, "nodes": encoder.nodes, "root": root}
    if current:
        plan["registry"] = current
    return plan


def stale_task_values(plan: dict[str, Any], current: dict[str, TaskRef]) -> list[str]:
    """Tasks that values of a (cached) plan hold, its control nodes' plans included, but
    that `current` defines differently."""
    stale: list[str] = []
    plans = [plan]
    while plans:
        for spec in plans.pop().get("nodes", ()):
            if not isinstance(spec, dict):
                continue
            task_values = spec.get("tasks")
            if isinstance(task_values, dict):
                stale.extend(changed_tasks(task_values, current))
            if "control" in spec and isinstance(spec.get("args"), list):
                for arg in spec["args"]:
                    if not isinstance(arg, dict):
                        continue
                    plans.extend(_plans_in(arg))
    return stale


def _plans_in(argument: dict[str, Any]) -> list[dict[str, Any]]:
    """The plans a control node's argument holds (not validated: any shape is searched)."""
    found: list[dict[str, Any]] = []
    stack: list[Any] = [argument]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            for key, value in item.items():
                if key in ("plan", "function") and isinstance(value, dict):
                    found.append(value)
                elif key in ("plans", "items", "terms", "list", "tuple", "dict"):
                    stack.append(value)
    return found


def current_tasks(plan: Any) -> dict[str, TaskRef]:
    """A submitted plan's `registry`: the task each name denotes in the submitter's code."""
    if not isinstance(plan, dict) or "registry" not in plan:
        return {}
    registry, tasks = plan["registry"], plan.get("tasks")
    if not isinstance(registry, dict) or not isinstance(tasks, dict):
        raise PlanError("a plan's 'registry' must map task names to keys of its 'tasks'")
    current = {}
    for name, key in registry.items():
        if not isinstance(key, str) or key not in tasks:
            raise PlanError(f"registry entry {name!r} names no task of the plan")
        ref = _task_ref(key, tasks[key])
        if ref.fullname != name:
            raise PlanError(f"registry entry {name!r} names task {ref.fullname!r}")
        current[name] = ref
    return current


# -- decoding (either side; never unpickles) --------------------------------------------------


def _task_ref(task_hash: str, data: Any) -> TaskRef:
    where = f"task {task_hash[:8]}"
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        raise PlanError(f"{where}: needs a 'name'")
    parameters = []
    for index, entry in enumerate(data.get("params", [])):
        if (
            not isinstance(entry, list | tuple)
            or len(entry) != 3
            or entry[1] not in PARAMETER_KINDS
        ):
            raise PlanError(f"{where}: params[{index}] must be [name, kind, default_hash]")
        parameters.append(Parameter(str(entry[0]), entry[1], entry[2]))
    code = ref_from_json(data["code"], f"{where}.code") if data.get("code") else None
    if code is not None and not isinstance(code, ValueRef):
        raise PlanError(f"{where}: 'code' must be a value reference")
    options = data.get("options") or {}
    if not isinstance(options, dict):
        raise PlanError(f"{where}: 'options' must be an object")
    return TaskRef(data["name"], task_hash, str(data.get("module", "")), parameters, code, options)


def decode_plan(
    plan: Any,
    owner: Any = None,
    current: dict[str, TaskRef] | None = None,
    on_truth: Callable[[str, bool], object] | None = None,
) -> tuple[graph.Node, list[graph.Node]]:
    """Scheduler nodes for a plan: (root, nodes ready to reduce). Raises PlanError, naming
    the offending node, for anything malformed. A task that `current` defines differently
    (a cached fragment made by older code) is called in its current definition.
    `on_truth(value hash, truth)` hears the truth a value node carries."""

    if not isinstance(plan, dict):
        raise PlanError("a plan must be a JSON object")
    if plan.get("version") != PLAN_VERSION:
        raise PlanError(f"unsupported plan version {plan.get('version')!r} (need {PLAN_VERSION})")
    tasks_data, nodes_data = plan.get("tasks", {}), plan.get("nodes")
    if not isinstance(tasks_data, dict) or not isinstance(nodes_data, list) or not nodes_data:
        raise PlanError("a plan needs a 'tasks' object and a non-empty 'nodes' list")
    if len(nodes_data) > MAX_PLAN_NODES:
        raise PlanError(f"plan has {len(nodes_data)} nodes; the limit is {MAX_PLAN_NODES}")
    tasks = {key: _task_ref(key, value) for key, value in tasks_data.items()}
    if current:
        tasks = {key: current.get(ref.fullname, ref) for key, ref in tasks.items()}
    nodes: list[graph.Node] = []
    ready: list[graph.Node] = []

    def child(index: Any, where: str) -> graph.Node:
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(nodes):
            raise PlanError(f"{where}: child {index!r} is not an earlier node")
        return nodes[index]

    def children_of(spec: dict, where: str) -> tuple[list[graph.Node], list[str]]:
        args, kwargs = spec.get("args", []), spec.get("kwargs", {})
        if not isinstance(args, list) or not isinstance(kwargs, dict):
            raise PlanError(f"{where}: 'args' must be a list and 'kwargs' an object")
        positional = [child(i, where) for i in args]
        named = [child(i, where) for i in kwargs.values()]
        return positional + named, list(kwargs)

    for position, spec in enumerate(nodes_data):
        where = f"plan node {position}"
        if not isinstance(spec, dict) or len(spec.keys() & _NODE_KINDS) != 1:
            raise PlanError(f"{where}: expected exactly one of {', '.join(sorted(_NODE_KINDS))}")
        if "value" in spec:
            ref = ref_from_json(spec["value"], where)
            node = graph.Node(graph.VALUE, ref)
            node.hash = ref.hash
            truth = spec.get("truth")
            if truth is not None and on_truth is not None:
                if not isinstance(truth, bool):
                    raise PlanError(f"{where}: 'truth' must be true, false or null")
                on_truth(ref.hash, truth)
            nodes.append(node)
            continue
        if "control" in spec:
            node = graph.Node(graph.CONTROL, _planned_control(spec, where))
            node.owner = owner
            ready.append(node)
            nodes.append(node)
            continue
        if "call" in spec:
            task = tasks.get(spec["call"])
            if task is None:
                raise PlanError(f"{where}: calls unknown task {spec['call']!r}")
            options = spec.get("options") or {}
            if options:
                task = task.options(**options)
            children, names = children_of(spec, where)
            split = len(children) - len(names)
            node = graph.Node(
                graph.CALL, PlannedCall(task, (None,) * split, dict.fromkeys(names)), children
            )
        elif "op" in spec:
            name = spec["op"]
            from .expression import SIMPLE_OPERATIONS

            if name not in SIMPLE_OPERATIONS:
                raise PlanError(f"{where}: unknown operation {name!r}")
            children, names = children_of(spec, where)
            # An operation is free, a deferred reference evaluated in the job consuming it,
            # except one that is a submitted plan's whole result: that runs as a job, so an
            # error fails the Execution and its status shows the value.
            is_result = owner is None and position == plan.get("root")
            if name in DEFERRED_OPERATIONS and not is_result:
                node = graph.Node(graph.OP, PlannedOp(name, names), children)
            else:
                node = _simple_op_call(name, children, names)
        else:
            kind = next(iter(spec.keys() & _CONTAINER_KEYS))
            items = spec[kind]
            if not isinstance(items, list):
                raise PlanError(f"{where}: {kind!r} must list child nodes")
            payload = None
            if kind == graph.NAMEDTUPLE:
                type_ref = ref_from_json(spec.get("type"), f"{where}.type")
                if not isinstance(type_ref, ValueRef):
                    raise PlanError(f"{where}: a namedtuple's 'type' must be a value reference")
                payload = NamedTupleType(type_ref, str(spec.get("type_name", "")))
            if kind == graph.DICT and len(items) % 2:
                raise PlanError(f"{where}: 'dict' needs alternating keys and values")
            node = graph.Node(kind, payload, [child(i, where) for i in items])
        node.owner = owner
        for dependency in node.children:
            if not dependency.resolved:
                dependency.parents.append(node)
                node.waiting += 1
        if node.waiting == 0:
            ready.append(node)
        nodes.append(node)
    root = child(plan.get("root"), "plan root")
    return root, ready


def _planned_control(spec: dict[str, Any], where: str) -> PlannedControl:
    from .control import scheduler_task_named

    fullname = spec["control"]
    if fullname not in PLANNED_CONTROL:
        raise PlanError(
            f"{where}: unknown scheduler task {fullname!r} (plans may call "
            f"{', '.join(sorted(PLANNED_CONTROL))})"
        )
    args, kwargs = spec.get("args"), spec.get("kwargs", {})
    if not isinstance(args, list) or kwargs != {}:
        raise PlanError(f"{where}: 'args' must be a list and 'kwargs' empty")
    kinds = PLANNED_CONTROL[fullname](len(args))
    if len(kinds) != len(args):
        raise PlanError(f"{where}: {fullname}() cannot take {len(args)} arguments")
    decoded = tuple(
        _control_argument(kind, arg, f"{where} argument {index}")
        for index, (kind, arg) in enumerate(zip(kinds, args, strict=True))
    )
    return PlannedControl(scheduler_task_named(fullname), decoded, {})


def _control_argument(kind: str, arg: Any, where: str) -> Any:
    if not isinstance(arg, dict) or list(arg) != [kind]:
        raise PlanError(f"{where}: expected {{{kind!r}: ...}}")
    value = arg[kind]
    if kind == "classes":
        if (
            not isinstance(value, list)
            or not 0 < len(value) <= MAX_ERROR_CLASSES
            or not all(isinstance(name, str) and name for name in value)
        ):
            raise PlanError(
                f"{where}: 'classes' must list 1 to {MAX_ERROR_CLASSES} qualified class names"
            )
        return ErrorClassNames(tuple(value))
    if kind == "terms":
        return _terms(value, where)
    if kind in ("plans", "items"):
        if not isinstance(value, list):
            raise PlanError(f"{where}: {kind!r} must be a list of plans")
        return [_control_argument("plan", {"plan": item}, f"{where}[{index}]")
                for index, item in enumerate(value)]  # fmt: skip
    if not isinstance(value, dict) or not isinstance(value.get("nodes"), list):
        raise PlanError(f"{where}: {kind!r} must be a plan")
    if kind == "function":
        if sum(1 for node in value["nodes"] if isinstance(node, dict) and "parameter" in node) != 1:
            raise PlanError(f"{where}: a function plan needs exactly one parameter node")
        return PlanFunction(value)
    return SubPlan(value, where)


def _terms(value: Any, where: str) -> Any:
    """catch_all's nested expressions from a plan: lists, tuples and dicts of sub-plans."""
    if not isinstance(value, dict) or len(value) != 1:
        raise PlanError(f"{where}: expected one of 'plan', 'list', 'tuple', 'dict'")
    ((kind, items),) = value.items()
    if kind == "plan":
        return _control_argument("plan", value, where)
    if kind not in ("list", "tuple", "dict") or not isinstance(items, list):
        raise PlanError(f"{where}: expected one of 'plan', 'list', 'tuple', 'dict'")
    if kind == "dict":
        if not all(isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], str)
                   for pair in items):  # fmt: skip
            raise PlanError(f"{where}: 'dict' must list [text key, term] pairs")
        return {key: _terms(item, f"{where}[{key!r}]") for key, item in items}
    terms = [_terms(item, f"{where}[{index}]") for index, item in enumerate(items)]
    return terms if kind == "list" else tuple(terms)


def apply_function(function: PlanFunction, argument: Ref | dict[str, Any]) -> dict[str, Any]:
    """The plan of `function(argument)`: its parameter node made a value node, or, for an
    argument that is a plan, that plan's root."""
    if not isinstance(argument, dict):
        nodes = [
            {"value": argument.to_json()} if isinstance(node, dict) and "parameter" in node
            else node
            for node in function.plan["nodes"]
        ]  # fmt: skip
        return {**function.plan, "nodes": nodes}
    return _splice([argument, function.plan], lambda roots: None)


def list_plan(plans: list[dict[str, Any]]) -> dict[str, Any]:
    """One plan whose value is the list of the values of `plans`."""
    return _splice(plans, lambda roots: {"list": roots})


def _splice(plans: list[Any], top: Callable[[list[int]], dict[str, Any] | None]) -> dict[str, Any]:
    """Plans joined into one: each one's nodes renumbered after the ones before; a
    parameter node stands for the root of the plan before it. `top(roots)` is a last node
    over the plans' roots (None: the last plan's root is the root)."""
    nodes: list[Any] = []
    tasks: dict[str, Any] = {}
    roots: list[int] = []
    for position, plan in enumerate(plans):
        if not isinstance(plan, dict) or not isinstance(plan.get("nodes"), list):
            raise PlanError(f"plan {position} of a joined plan is not a plan")
        if not isinstance(plan.get("tasks", {}), dict):
            raise PlanError(f"plan {position} of a joined plan has no 'tasks' object")
        tasks.update(plan.get("tasks", {}))
        moved: dict[int, int] = {}
        for index, spec in enumerate(plan["nodes"]):
            if isinstance(spec, dict) and "parameter" in spec and roots:
                moved[index] = roots[-1]
                continue
            moved[index] = len(nodes)
            nodes.append(_renumbered(spec, moved))
        root = plan.get("root")
        if root not in moved:
            raise PlanError(f"plan {position} of a joined plan has no root node")
        roots.append(moved[root])
    last = top(roots)
    if last is not None:
        nodes.append(last)
    return {"version": PLAN_VERSION, "tasks": tasks, "nodes": nodes,
            "root": len(nodes) - 1 if last is not None else roots[-1]}  # fmt: skip


def _renumbered(spec: Any, moved: dict[int, int]) -> Any:
    """A node with its children's indices moved; an index of no earlier node becomes -1,
    which the decoder refuses, naming the node."""
    if not isinstance(spec, dict):
        return spec

    def move(index: Any) -> Any:
        return moved.get(index, -1) if type(index) is int else index

    changed = dict(spec)
    for key in _CHILD_LISTS:
        if isinstance(spec.get(key), list):
            changed[key] = [move(index) for index in spec[key]]
    if isinstance(spec.get("kwargs"), dict):
        changed["kwargs"] = {name: move(index) for name, index in spec["kwargs"].items()}
    return changed


def _simple_op_call(name: str, children: list[graph.Node], names: list[str]) -> graph.Node:
    """An operation that may make an expression (calling a task value) runs as a job: a
    call of the built-in op task, whose result the scheduler then evaluates."""
    name_node = graph.Node(graph.VALUE, ValueRef(*encode(name)))
    name_node.hash = name_node.payload.hash
    split = len(children) - len(names)
    return graph.Node(
        graph.CALL,
        PlannedCall(simple_op_ref(), (None,) * (split + 1), dict.fromkeys(names)),
        [name_node, *children],
    )


_CONTAINER_KEYS_ORDER = (graph.LIST, graph.TUPLE, graph.SET, graph.DICT, graph.NAMEDTUPLE)
_CONTAINER_KEYS = set(_CONTAINER_KEYS_ORDER)
_CHILD_LISTS = ("args", *_CONTAINER_KEYS_ORDER)
_NODE_KINDS = {"value", "call", "op", "control", *_CONTAINER_KEYS}


def assemble_reference(node: graph.Node) -> CompositeRef | DeferredRef | Any:
    """A ready container or operation node's value as a reference (operator side: nothing
    unpickled, nothing evaluated)."""
    items = tuple(child.value for child in node.children)
    if node.kind == graph.FORWARD:
        return items[0]
    if node.kind == graph.OP:
        op: PlannedOp = node.payload
        split = len(items) - len(op.kwargs)
        return DeferredRef(
            op.name, items[:split], tuple(zip(op.kwargs, items[split:], strict=True))
        )
    if node.kind == graph.NAMEDTUPLE:
        payload: NamedTupleType = node.payload
        return CompositeRef(node.kind, items, payload.type_ref, payload.type_name)
    return CompositeRef(node.kind, items)


def dumps_plan(plan: dict[str, Any]) -> bytes:
    return json.dumps(plan, separators=(",", ":"), sort_keys=True).encode()


def loads_plan(data: bytes | str) -> dict[str, Any]:
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as error:
        raise PlanError(f"plan is not valid JSON: {error}") from None


# The built-in tasks as plan references: the operator names them without importing code.
def _builtin_ref(builtin: Any, **options: Any) -> TaskRef:
    return TaskRef(builtin.fullname, builtin.hash, builtin.func.__module__, builtin.parameters,
                   None, options)  # fmt: skip


@cache
def simple_op_ref() -> TaskRef:
    return _builtin_ref(simple_op)


@cache
def call_by_name_ref() -> TaskRef:
    return _builtin_ref(call_by_name, cache=False)


@cache
def files_valid_ref() -> TaskRef:
    return _builtin_ref(files_valid, cache=False)
