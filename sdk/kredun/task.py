"""Tasks: functions whose calls the scheduler evaluates, caches and records."""

from __future__ import annotations

import inspect
import marshal
import textwrap
from collections.abc import Callable
from typing import Any, overload

from .binding import Parameter, bind, describe_signature, hash_call_arguments
from .expression import TaskExpression
from .hashing import hash_parts, hash_text, hash_value

_registry: dict[str, Task] = {}


def get_task(fullname: str) -> Task | None:
    """The most recently defined task with this full name."""
    return _registry.get(fullname)


def _namespace_of(func: Callable) -> str:
    module_globals = getattr(func, "__globals__", {})
    return module_globals.get("kredun_namespace") or module_globals.get("redun_namespace") or ""


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
        self.version = version
        self.source = source if source is not None else _source_of(func)
        self._options = dict(options or {})
        self.hash = task_hash or self._compute_hash()
        self._signature: inspect.Signature | None = None
        self._parameters: list[Parameter] | None = None
        self.__doc__ = func.__doc__

    def _compute_hash(self) -> str:
        if self.version is not None:
            return hash_parts("task", [self.fullname, "version", str(self.version)])
        if self.source:
            return hash_parts("task", [self.fullname, "source", hash_text(self.source)])
        # No source (e.g. defined with exec): the code object, constants included, is the
        # next best identity.
        code = getattr(self.func, "__code__", None)
        compiled = marshal.dumps(code) if code is not None else b""
        return hash_parts("task", [self.fullname, "code", hash_value(compiled)])

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

    def options(self, **options: Any) -> Task:
        """A copy of this task with options overridden for the calls made through it."""
        copy = Task(
            self.func,
            self.name,
            self.namespace,
            self.version,
            {**self._options, **options},
            source=self.source,
            task_hash=self.hash,
        )
        copy._signature = self._signature
        copy._parameters = self._parameters
        return copy

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

    def __reduce__(self) -> tuple[Any, ...]:
        return (_restore_task, (self.fullname, self.hash, self._options, self.func, self.version))


def _restore_task(
    fullname: str, task_hash: str, options: dict, func: Callable, version: str | None
) -> Task:
    """Unpickle a task as the registered one when it is the same code; else rebuild it."""
    known = _registry.get(fullname)
    if known is not None and known.hash == task_hash:
        return known.options(**options) if options != known._options else known
    namespace, _, name = fullname.rpartition(".")
    restored = Task(func, name, namespace, version, options, task_hash=task_hash)
    _registry.setdefault(fullname, restored)
    return restored


class PartialTask:
    """A task with some arguments already supplied."""

    def __init__(self, task: Task, args: tuple, kwargs: dict) -> None:
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

    def __call__(self, *args: Any, **kwargs: Any) -> TaskExpression:
        return TaskExpression(self.task, self.args + args, {**self.kwargs, **kwargs})

    def partial(self, *args: Any, **kwargs: Any) -> PartialTask:
        return PartialTask(self.task, self.args + args, {**self.kwargs, **kwargs})

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
    **options: Any,
) -> Callable[[Callable], Task]: ...
def task(
    func: Callable | None = None,
    *,
    name: str | None = None,
    namespace: str | None = None,
    version: str | None = None,
    **options: Any,
) -> Task | Callable[[Callable], Task]:
    """Make a function a task: `@task` or `@task(version="2", cache=False, executor="process")`."""

    def decorate(function: Callable) -> Task:
        created = Task(function, name, namespace, version, options)
        _registry[created.fullname] = created
        return created

    return decorate(func) if func is not None else decorate
