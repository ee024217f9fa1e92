"""Finding tasks: load a workflow file as a module, or import a task by its full name."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from .errors import WorkflowLoadError
from .task import Task, get_task


def load_workflow_file(path: str | Path) -> ModuleType:
    """Import a workflow file as a module named after it, importable by that name in child
    processes too (its directory goes on sys.path, which spawned workers inherit)."""
    file = Path(path).resolve()
    if not file.is_file():
        raise WorkflowLoadError(f"workflow file not found: {path}")
    name = file.stem
    directory = str(file.parent)
    if directory not in sys.path:
        sys.path.insert(0, directory)
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise WorkflowLoadError(f"not a Python module: {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as error:
        del sys.modules[name]
        raise WorkflowLoadError(f"cannot import {path}: {type(error).__name__}: {error}") from error
    return module


def find_task(module: ModuleType, name: str) -> Task:
    """A task by its attribute name in the module, or by full name."""
    found = getattr(module, name, None)
    if isinstance(found, Task):
        return found
    registered = get_task(name)
    if registered is not None:
        return registered
    tasks = sorted(k for k, v in vars(module).items() if isinstance(v, Task))
    listing = ", ".join(tasks) if tasks else "none"
    raise WorkflowLoadError(f"no task {name!r} in {module.__file__} (tasks there: {listing})")


def import_task(fullname: str) -> Task:
    """A task from an importable module path, e.g. `examples.hello.main`."""
    module_name, _, attribute = fullname.rpartition(".")
    if not module_name:
        raise WorkflowLoadError(f"task {fullname!r} is not a dotted module path (module.task)")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise WorkflowLoadError(f"cannot import module {module_name!r}: {error}") from None
    return find_task(module, attribute)
