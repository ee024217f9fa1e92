"""Tags: key=value text pairs on executions, jobs and values, for finding them again.

`@task(tags=...)` tags every job of a task, `Scheduler.run(..., tags=...)` (and
`kredun run --tag key=value`) an execution, `apply_tags(value, tags)` a value; `kredun tag`
adds and removes tags afterwards and `kredun log --tag` filters by them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .control import ControlRun, SchedulerExpression, scheduler_task
from .errors import TagError

TAG_KEY_LIMIT = 200
TAG_VALUE_LIMIT = 1000
_SCALARS = (str, int, float, bool)


def check_tags(tags: Any, where: str = "tags") -> list[tuple[str, str]]:
    """Tags as (key, value) text pairs, from a dict or (key, value) pairs; numbers and
    booleans become text. Raises TagError naming what is wrong."""
    if tags is None:
        return []
    if isinstance(tags, Mapping):
        pairs: Iterable[Any] = tags.items()
    elif isinstance(tags, str | bytes) or not isinstance(tags, Iterable):
        raise TagError(f"{where}: expected a dict or (key, value) pairs, not {tags!r}")
    else:
        pairs = tags
    checked: list[tuple[str, str]] = []
    for pair in pairs:
        if not (isinstance(pair, tuple | list) and len(pair) == 2):
            raise TagError(f"{where}: expected (key, value) pairs, not {pair!r}")
        key, value = pair
        if not isinstance(key, str) or not key or len(key) > TAG_KEY_LIMIT:
            raise TagError(
                f"{where}: a tag key must be non-empty text of at most {TAG_KEY_LIMIT} "
                f"characters, not {key!r}"
            )
        if not isinstance(value, _SCALARS) or len(str(value)) > TAG_VALUE_LIMIT:
            raise TagError(
                f"{where}: the value of tag {key!r} must be text, a number or a boolean of at "
                f"most {TAG_VALUE_LIMIT} characters, not {value!r}"
            )
        checked.append((key, str(value)))
    return checked


def parse_tag(text: str) -> tuple[str, str]:
    """`key=value` from the command line."""
    key, equals, value = text.partition("=")
    if not equals or not key:
        raise TagError(f"tag {text!r}: expected KEY=VALUE")
    return key, value


@scheduler_task("apply_tags")
def _apply_tags(run: ControlRun, node: Any, value: Any, tags: list[tuple[str, str]]) -> None:
    def tag(result: Any) -> None:
        run.tag_value(result, tags)
        run.resolve(node, result)

    run.evaluate(node, value, tag, None)


def apply_tags(value: Any, tags: Any) -> SchedulerExpression:
    """`value`, unchanged, once evaluated tagged with `tags` (a dict or (key, value) pairs)
    in the provenance store, so `kredun log --tag KEY=VALUE` finds it."""
    return _apply_tags(value, check_tags(tags))
