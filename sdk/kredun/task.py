"""Tasks: functions whose calls the scheduler evaluates, caches and records."""

from __future__ import annotations

import contextvars
import enum
import inspect
import marshal
import re
import sys
import textwrap
import typing
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn, overload

from .binding import Parameter, bind, describe_signature, hash_call_arguments
from .errors import (
    NamespaceWarning,
    SerializationError,
    TaskNameError,
    TaskOptionError,
    WorkflowLoadError,
)
from .expression import Expression, TaskExpression
from .hashing import hash_parts, hash_text, hash_value
from .options import check_task_options, reads_context
from .serialize import dumps, is_shipping, ship
from .validity import checking, report_stale

# True while a task value's code is pickled apart (see Task.__reduce__).
_pickling_code: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "kredun_pickling_code", default=False
)

# Tasks defined by code in this process (decorated), by full name: the current definitions.
_registry: dict[str, Task] = {}
# Tasks rebuilt from shipped code that this process does not define (a job's process runs
# the code it was sent), by (full name, hash).
_shipped: dict[tuple[str, str], Task] = {}


# While a value is pickled for the cache: the task values in it, name -> hash.
_pickled_tasks: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "kredun_pickled_tasks", default=None
)


class CacheScope(enum.Enum):
    """Where a call may take a result from instead of running (`@task(cache_scope=...)`)."""

    NONE = "NONE"  # nowhere: it always runs
    CSE = "CSE"  # an identical call of the same execution (what cache=False means)
    BACKEND = "BACKEND"  # any execution recorded in the provenance store (the default)


class CacheCheckValid(enum.Enum):
    """How a cached call is checked (`@task(check_valid=...)`)."""

    FULL = "full"  # replay its result and check every call in the expression it returned
    SHALLOW = "shallow"  # reuse its final value while every task under it is unchanged


def registered_hashes() -> frozenset[str]:
    """The hashes of every task this process defines (a few hundred at most: computed on
    each call rather than kept in step with every change to the registry)."""
    return frozenset(task.hash for task in _registry.values())


def get_task(fullname: str) -> Task | None:
    """The most recently defined task with this full name."""
    return _registry.get(fullname)


class TaskRegistry:
    """The tasks this process defines, by full name, as redun's task registry offers them:
    `get_task_registry().get("ns.align")`, `.get(hash=...)`, iteration. Scheduler tasks
    (`kredun.cond`, `kredun.map_`, ...) are included, as redun includes its own."""

    @staticmethod
    def _scheduler_tasks() -> dict[str, Any]:
        from .control import _scheduler_tasks  # control imports this module

        return _scheduler_tasks

    def get(self, task_name: str | None = None, hash: str | None = None) -> Any:
        """The task with this full name (its current definition), or the first with this
        hash; None when there is none."""
        if task_name:
            return _registry.get(task_name) or self._scheduler_tasks().get(task_name)
        if hash:
            return next((task for task in self if task.hash == hash), None)
        raise TaskNameError("TaskRegistry.get(): give task_name or hash")

    @property
    def task_hashes(self) -> set[str]:
        return {task.hash for task in self}

    def __iter__(self) -> Iterator[Any]:
        return iter([*_registry.values(), *self._scheduler_tasks().values()])

    def __len__(self) -> int:
        return len(_registry) + len(self._scheduler_tasks())

    def __contains__(self, fullname: object) -> bool:
        return fullname in _registry or fullname in self._scheduler_tasks()


_task_registry = TaskRegistry()


def get_task_registry() -> TaskRegistry:
    """The registry of every task defined in this process (redun's `get_task_registry`)."""
    return _task_registry


def current_definition(task: Task) -> Task:
    """The task its name denotes now: a call built before a task was redefined (or loaded
    from the cache) runs the current code, as the name is what the workflow refers to."""
    defined = _registry.get(task.fullname)
    if defined is None or defined is task or defined.hash == task.hash:
        return task
    return defined.options(**task._overrides) if task._overrides else defined


def definitions_near(tasks: Iterable[Any]) -> list[Task]:
    """The current definitions of the tasks in the modules that define `tasks`, and in the
    modules their globals take tasks from: the code a cluster resolves task names against
    when it replays results cached by earlier code."""
    modules = {_module_of(task) for task in tasks if isinstance(task, Task)}
    for name in list(modules):
        namespace = vars(sys.modules[name]) if name in sys.modules else {}
        modules.update(_module_of(value) for value in namespace.values() if isinstance(value, Task))
    return [
        task for task in _registry.values()
        if _module_of(task) in modules and task.namespace != "kredun"
    ]  # fmt: skip


def _module_of(task: Task) -> str:
    return getattr(task.func, "__module__", "") or ""


@contextmanager
def collecting_task_values() -> Iterator[dict[str, str]]:
    """Note every task value pickled while the block runs (name -> hash): a result holding
    one is what the current code computes only while that task is defined the same way."""
    found: dict[str, str] = {}
    token = _pickled_tasks.set(found)
    try:
        yield found
    finally:
        _pickled_tasks.reset(token)


def changed_tasks(task_values: dict[str, str], current: dict[str, Any] | None = None) -> list[str]:
    """Which of these task values (name -> hash) are defined differently now, by this
    process's definitions or by `current` (name -> task) where given."""
    definitions = _registry if current is None else current
    return [
        name for name, task_hash in task_values.items()
        if name in definitions and definitions[name].hash != task_hash
    ]  # fmt: skip


# The namespace for tasks whose module sets none (see `namespace()`).
_current_namespace = ""


def namespace(name: str | None = None) -> None:
    """Set the namespace of the tasks defined from now on in modules that set no
    `kredun_namespace`/`redun_namespace`; `namespace()` unsets it."""
    global _current_namespace
    if name:
        _check_names("x", name)
    _current_namespace = name or ""


def get_current_namespace() -> str:
    """The namespace `namespace()` set ("" when none): what tasks defined now in modules
    that set none get."""
    return _current_namespace


def warn_of_tasks_without_namespace() -> None:
    """Warn (NamespaceWarning) when a defined task has no namespace, as redun does when a
    workflow starts; an explicit `namespace=""` counts as none. The warning points at the
    first such task's definition, where the fix goes."""
    missing = [task for task in _registry.values() if not task.namespace]
    if not missing:
        return
    code = getattr(missing[0].func, "__code__", None)
    warnings.warn_explicit(
        NamespaceWarning(
            "tasks without a namespace may clash with same-named tasks elsewhere; set "
            '`kredun_namespace = "..."` in their module or @task(namespace=...): '
            + ", ".join(sorted(f"{task.func.__module__}:{task.name}" for task in missing))
        ),
        NamespaceWarning,
        code.co_filename if code else "<unknown>",
        code.co_firstlineno if code else 0,
    )


def _namespace_of(func: Callable) -> str:
    module_globals = getattr(func, "__globals__", {})
    return (
        module_globals.get("kredun_namespace")
        or module_globals.get("redun_namespace")
        or _current_namespace
    )


def _source_of(func: Callable) -> str:
    """The function's source without its decorators; empty when not available."""
    code = getattr(func, "__code__", None)
    if code is not None and code.co_filename == "<string>":
        return ""  # exec'd code: any "<string>" lines in linecache belong to someone else
    try:
        source = textwrap.dedent(inspect.getsource(func))
    except (OSError, TypeError):
        return ""
    lines = source.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if not line.startswith("@")), 0)
    return "".join(lines[start:])


_NAME = re.compile(r"[A-Za-z_][A-Za-z_0-9]*")
_NAMESPACE = re.compile(r"[A-Za-z_][A-Za-z_0-9.]*")


def source_task_hash(fullname: str, source: str, included: list[str] | None = None) -> str:
    """The hash of a task identified by its source (no `version`): what a provenance row
    claiming that name and source must carry."""
    return hash_parts("task", [fullname, "source", hash_text(source), *(included or ())])


def _check_names(name: str, namespace: str) -> None:
    """Names appear in dotted full names, the CLI and Pod labels: keep them identifiers."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise TaskNameError(
            f"task name {name!r} must use only letters, digits and '_', not starting with a digit"
        )
    if namespace and (not isinstance(namespace, str) or not _NAMESPACE.fullmatch(namespace)):
        raise TaskNameError(
            f"task namespace {namespace!r} must use only letters, digits, '_' and '.', "
            "starting with a letter or '_'"
        )


def _return_annotation(func: Callable) -> Any:
    annotation = getattr(func, "__annotations__", {}).get("return")
    if isinstance(annotation, str):  # `from __future__ import annotations`
        try:
            annotation = typing.get_type_hints(func).get("return")
        except Exception:  # a name not defined (yet): the length stays unknown
            return None
    return annotation


def _tuple_length(annotation: Any) -> int | None:
    if typing.get_origin(annotation) is tuple:
        arguments = typing.get_args(annotation)
        if Ellipsis in arguments or annotation is typing.Tuple:  # noqa: UP006 -- bare Tuple
            return None
        return len(arguments)
    if isinstance(annotation, type) and issubclass(annotation, tuple):
        fields = getattr(annotation, "_fields", None)  # a NamedTuple
        return len(fields) if fields else None
    return None


class Task:
    """A function wrapped so that calling it returns a lazy TaskExpression."""

    def __init__(
        self,
        func: Callable,
        name: str | None = None,
        namespace: str | None = None,
        version: str | None = None,
        options: dict[str, Any] | None = None,
        *,
        source: str | None = None,
        task_hash: str | None = None,
    ) -> None:
        self.func = func
        self.name = name or func.__name__
        self.namespace = namespace if namespace is not None else _namespace_of(func)
        self.fullname = f"{self.namespace}.{self.name}" if self.namespace else self.name
        _check_names(self.name, self.namespace)
        self.version = version
        self.source = source if source is not None else _source_of(func)
        self._options = dict(options or {})
        check_task_options(self._options, f"task {self.fullname}")
        # Options set with `.options()` after decoration: they survive a redefinition.
        self._overrides: dict[str, Any] = {}
        self.hash = task_hash or self._compute_hash()
        if self._options.get("script"):
            from .scripting import script_function

            self.func = script_function(func)
        self._signature: inspect.Signature | None = None
        self._parameters: list[Parameter] | None = None
        self._expression_defaults: dict[str, Any] | None = None
        self._context_options: dict[str, Any] | None = None
        self.__doc__ = func.__doc__

    def _compute_hash(self) -> str:
        included = self._hash_includes()
        if self.version is not None:
            return hash_parts("task", [self.fullname, "version", str(self.version), *included])
        if self.source:
            return source_task_hash(self.fullname, self.source, included)
        # No source (e.g. defined with exec): the code object, constants included, is the
        # next best identity.
        code = getattr(self.func, "__code__", None)
        compiled = marshal.dumps(code) if code is not None else b""
        return hash_parts("task", [self.fullname, "code", hash_value(compiled), *included])

    def _hash_includes(self) -> list[str]:
        """The hashes of the `hash_includes` values (data the task depends on besides its
        source, e.g. a file it reads or a wrapper's arguments), in no particular order."""
        values = self._options.get("hash_includes")
        if not values:
            return []
        try:
            return ["includes", *sorted(hash_value(value) for value in values)]
        except SerializationError as error:
            raise TaskOptionError(f"task {self.fullname}: option hash_includes: {error}") from None

    @property
    def nout(self) -> int | None:
        """How many items a call's result unpacks into (`a, b = split(x)`): the `nout` option,
        else the length of a `-> tuple[int, str]` or NamedTuple return annotation."""
        if "nout" in self._options:
            return self._options["nout"]
        return _tuple_length(_return_annotation(self.func))

    @property
    def signature(self) -> inspect.Signature:
        if self._signature is None:
            self._signature = inspect.signature(self.func)
        return self._signature

    def __repr__(self) -> str:
        return f"Task(fullname={self.fullname}, hash={self.hash[:8]})"

    def __call__(self, *args: Any, **kwargs: Any) -> TaskExpression:
        return TaskExpression(self, args, kwargs)

    def get_option(self, key: str, default: Any = None) -> Any:
        return self._options.get(key, default)

    @property
    def option_values(self) -> dict[str, Any]:
        return dict(self._options)

    # redun's names for reading options; they leave out kredun's bookkeeping entries
    # (leading "_"), which no user sets.
    def get_task_option(self, option_name: str, default: Any = None) -> Any:
        """The option's value (`.options(...)` overrides win), or `default` when unset."""
        return self.get_task_options().get(option_name, default)

    def has_task_option(self, option_name: str) -> bool:
        return option_name in self.get_task_options()

    def get_task_options(self) -> dict[str, Any]:
        """The options as redun reports them: cache=True/False read as the cache_scope it
        means (an explicit cache_scope wins, as the scheduler has it), and cache_scope and
        check_valid as their enums."""
        view = {key: value for key, value in self._options.items() if not key.startswith("_")}
        if "cache" in view:
            cache = view.pop("cache")
            view.setdefault("cache_scope", CacheScope.BACKEND if cache else CacheScope.CSE)
        for name, kind in (("cache_scope", CacheScope), ("check_valid", CacheCheckValid)):
            if name in view:  # given as the enum or its value: both were validated
                view[name] = kind(getattr(view[name], "value", view[name]))
        return view

    def options(self, **options: Any) -> Task:
        """A copy of this task with options overridden for the calls made through it."""
        copy = Task(
            self.func,
            self.name,
            self.namespace,
            self.version,
            {**self._options, **options},
            source=self.source,
            # New data to hash makes a new task; other options leave its identity alone.
            task_hash=None if "hash_includes" in options else self.hash,
        )
        copy._overrides = {**self._overrides, **options}
        copy._signature = self._signature
        copy._parameters = self._parameters
        copy._expression_defaults = self._expression_defaults
        return copy

    def export_options(self, **options: Any) -> Task:
        """A copy of this task with these options set, for its calls and for every job
        under them (a job's own `.options(...)` still win)."""
        exported = {*self._options.get("_export", ()), *options}
        return self.options(**options, _export=tuple(sorted(exported)))

    def update_context(self, context: dict[str, Any] | None = None, **values: Any) -> Task:
        """A copy of this task whose calls (and everything they call) see these context
        values merged over the context they inherit."""
        from .context import merge_dicts

        previous = self._options.get("_context_override") or {}
        return self.options(_context_override=merge_dicts([previous, context or {}, values]))

    @property
    def context_options(self) -> dict[str, Any]:
        """Options whose value is `get_context(...)`: each job's context gives their value."""
        if self._context_options is None:
            self._context_options = {
                name: value for name, value in self._options.items() if reads_context(value)
            }
        return self._context_options

    @property
    def expression_defaults(self) -> dict[str, Any]:
        """Parameters whose default is an expression (e.g. `get_context(...)`): the scheduler
        evaluates it for each call that leaves the parameter out, before hashing the call."""
        if self._expression_defaults is None:
            self._expression_defaults = {
                name: parameter.default
                for name, parameter in self.signature.parameters.items()
                if isinstance(parameter.default, Expression)
            }
        return self._expression_defaults

    def partial(self, *args: Any, **kwargs: Any) -> PartialTask:
        return PartialTask(self, args, kwargs)

    @property
    def parameters(self) -> list[Parameter]:
        if self._parameters is None:
            self._parameters = describe_signature(self.signature)
        return self._parameters

    def hash_arguments(self, positional: list[str], named: dict[str, str]) -> str:
        """Hash a call's arguments, given their value hashes, by parameter name with defaults
        filled in, so `add(1, 2)` and `add(a=1, b=2)` are the same call. Raises TypeError
        for a call that does not fit the signature."""
        return hash_call_arguments(self.parameters, positional, named)

    @property
    def default_values(self) -> dict[str, Any]:
        return {
            name: parameter.default
            for name, parameter in self.signature.parameters.items()
            if parameter.default is not inspect.Parameter.empty
        }

    def bind(self, args: tuple, kwargs: dict) -> dict[str, Any]:
        """Arguments by parameter name (raises TypeError on a bad call)."""
        return bind(self.parameters, list(args), kwargs)

    def __kredun_hash__(self) -> str:
        return self.hash

    def _state(self) -> tuple[Any, ...]:
        return (self.fullname, self.hash, self._options, self.version, self.func, self._overrides)

    def call_reduction(self, args: tuple, kwargs: dict) -> tuple[Any, ...]:
        """How a call of this task pickles: by the task's name (see _restore_call), with the
        task's code only when shipped to another process. A cached call holding the code,
        and so the code's globals (other tasks), would go stale whenever any of those tasks
        changed, although the call means whatever its name denotes when it is replayed."""
        state = self._state()
        if not is_shipping():
            state = (*state[:4], None, state[5])
        return (_restore_call, (state, args, kwargs))

    def __reduce__(self) -> tuple[Any, ...]:
        found = _pickled_tasks.get()
        if found is not None:
            found[self.fullname] = self.hash
        # The code travels too: a job's process may not define the task. Where the task is
        # defined, the definition wins (see _restore_task). It is pickled on its own, with
        # no task values noted: the tasks it calls are looked up by name when it runs, so
        # editing one of them leaves a result holding this task valid (as in redun, a task
        # value stays valid while its own hash is current), and restoring the value does
        # not restore them.
        state = self._state()
        if _pickling_code.get():
            # Inside another task's code (its globals, a recursive task's own closure): one
            # pickler holds all of it, and its memo ends the cycles.
            return (_restore_task, state)
        tokens = _pickled_tasks.set(None), _pickling_code.set(True)
        try:
            code = ship(self.func) if is_shipping() else dumps(self.func)
        finally:
            _pickled_tasks.reset(tokens[0])
            _pickling_code.reset(tokens[1])
        return (_restore_task, (*state[:4], code, state[5]))


# Unpickling a task value's code (pickled apart, see Task.__reduce__) takes a loader, which
# this module may not import: the operator imports tasks and must never reach a loader. The
# loading module, kredun.deserialize, installs its own when it is imported, and every
# unpickling in kredun goes through that module.
_code_loader: Callable[[bytes], Any] | None = None


def install_code_loader(loader: Callable[[bytes], Any]) -> None:
    global _code_loader
    _code_loader = loader


def _load_code(code: bytes) -> Callable:
    if _code_loader is None:
        raise SerializationError(
            "a task value's code can be loaded only through kredun.deserialize"
        )
    return _code_loader(code)


def _restore_task(
    fullname: str,
    task_hash: str,
    options: dict,
    version: str | None,
    code: bytes | Callable,
    overrides: dict | None = None,
) -> Task:
    """Unpickle a task value: this process's definition when it has the same hash; else the
    shipped code, and a cached result holding it is stale (see kredun.validity). `code` is
    the pickled function (values cached before it was pickled apart hold the function)."""
    defined = _registry.get(fullname)
    if defined is not None and defined.hash == task_hash:
        return defined.options(**overrides) if overrides else defined
    change = "was edited" if defined is not None else "is no longer defined"
    report_stale(f"task {fullname} {change}")
    func = _load_code(code) if isinstance(code, bytes) else code
    return _shipped_task(fullname, task_hash, options, version, func, overrides)


def _restore_call(state: tuple, args: tuple, kwargs: dict) -> TaskExpression:
    """Unpickle a task call: it calls whatever the task's name denotes now, as a workflow
    refers to tasks by name; only a name that is no longer defined makes it stale."""
    fullname, _, _, _, _, overrides = state
    defined = _registry.get(fullname)
    if defined is not None:
        return TaskExpression(defined.options(**overrides) if overrides else defined, args, kwargs)
    report_stale(f"task {fullname} is no longer defined")
    if state[4] is None:  # pickled by name only, for the cache
        return TaskExpression(_undefined_task(*state[:4]), args, kwargs)
    return TaskExpression(_shipped_task(*state), args, kwargs)


def _undefined_task(fullname: str, task_hash: str, options: dict, version: str | None) -> Task:
    """A stand-in for a task a cached call names but this process does not define: the
    cached result is stale, and running the stand-in says why."""

    def undefined(*args: Any, **kwargs: Any) -> NoReturn:
        raise WorkflowLoadError(f"task {fullname} is not defined (was it renamed or removed?)")

    namespace, _, name = fullname.rpartition(".")
    return Task(undefined, name, namespace, version, options, source="", task_hash=task_hash)


def _shipped_task(
    fullname: str,
    task_hash: str,
    options: dict,
    version: str | None,
    func: Callable,
    overrides: dict | None,
) -> Task:
    shipped = _shipped.get((fullname, task_hash))
    if shipped is None:
        namespace, _, name = fullname.rpartition(".")
        base = {key: value for key, value in options.items() if key not in (overrides or {})}
        shipped = Task(func, name, namespace, version, base, task_hash=task_hash)
        _shipped[(fullname, task_hash)] = shipped
    if fullname not in _registry and not checking():
        # Code sent to this process to run (a job's arguments, a subrun's expression) is
        # the current definition here: a nested scheduler checks its cache against it.
        _registry[fullname] = shipped
    return shipped.options(**overrides) if overrides else shipped


class PartialTask:
    """A task (or a scheduler task, such as map_) with some arguments already supplied."""

    def __init__(self, task: Any, args: tuple, kwargs: dict) -> None:
        self.task = task
        self.args = args
        self.kwargs = kwargs
        self.fullname = task.fullname
        self.hash = hash_parts("partial", [task.hash, hash_value(args), hash_value(kwargs)])

    def __repr__(self) -> str:
        return (
            f"PartialTask(fullname={self.fullname}, hash={self.hash[:8]}, "
            f"args={self.args!r}, kwargs={self.kwargs!r})"
        )

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        # A TaskExpression, or a SchedulerExpression for a partial scheduler task (map_).
        return self.task(*self.args, *args, **{**self.kwargs, **kwargs})

    def partial(self, *args: Any, **kwargs: Any) -> PartialTask:
        return PartialTask(self.task, self.args + args, {**self.kwargs, **kwargs})

    def options(self, **options: Any) -> PartialTask:
        """This partial application with task options set for the calls made through it."""
        return PartialTask(self.task.options(**options), self.args, self.kwargs)

    def get_task_option(self, option_name: str, default: Any = None) -> Any:
        return self.task.get_task_option(option_name, default)

    def has_task_option(self, option_name: str) -> bool:
        return self.task.has_task_option(option_name)

    def get_task_options(self) -> dict[str, Any]:
        return self.task.get_task_options()

    def __kredun_hash__(self) -> str:
        return self.hash


@overload
def task(func: Callable) -> Task: ...
@overload
def task(
    func: None = None,
    *,
    name: str | None = None,
    namespace: str | None = None,
    version: str | None = None,
    source: str | None = None,
    **options: Any,
) -> Callable[[Callable], Task]: ...
def task(
    func: Callable | None = None,
    *,
    name: str | None = None,
    namespace: str | None = None,
    version: str | None = None,
    source: str | None = None,
    **options: Any,
) -> Task | Callable[[Callable], Task]:
    """Make a function a task: `@task` or `@task(version="2", cache=False, executor="process")`.
    `export_options={...}` sets options for the task's calls and every job under them, as
    `task.export_options(...)` does. `source="..."` is hashed in place of the function's own
    source (for generated functions whose source cannot be read); keeping it true to the
    function is the caller's job."""
    exported = options.get("export_options")
    if exported is not None:
        if not isinstance(exported, dict):
            raise TaskOptionError(f"option export_options={exported!r} must be a dict of task "
                                  "options, e.g. export_options={'executor': 'batch'}")  # fmt: skip
        options = {key: value for key, value in options.items() if key != "export_options"}
        options.update(exported, _export=tuple(sorted(exported)))

    def decorate(function: Callable) -> Task:
        created = Task(function, name, namespace, version, options, source=source)
        _registry[created.fullname] = created
        return created

    return decorate(func) if func is not None else decorate
