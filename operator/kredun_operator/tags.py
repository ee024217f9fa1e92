"""An Execution's tags, for the provenance store: what `kredun.submit(..., tags=...)` wrote
into the `kredun.dev/tags` annotation (a JSON object of key -> list of values), and labels
`tags.kredun.dev/KEY` (a hand-written Execution may carry only those).

The annotation is whatever its author wrote, so it is bounded before it is parsed (size),
while it is parsed (count of tags, text keys and values of bounded length) and rejected
whole when anything is off: a malformed annotation fails its Execution, naming it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from kredun.errors import TagError
from kredun.resource import (
    ANNOTATION_TAGS,
    MAX_EXECUTION_TAGS,
    TAG_LABEL_PREFIX,
    TAGS_ANNOTATION_LIMIT,
)
from kredun.tags import check_tags

from .errors import AnnotationError

WHERE = f"metadata.annotations[{ANNOTATION_TAGS!r}]"


def execution_tags(metadata: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The (key, value) tags of an Execution, each once, annotation first. Raises
    AnnotationError naming the annotation and what is wrong with it."""
    annotation = (metadata.get("annotations") or {}).get(ANNOTATION_TAGS)
    pairs = [] if annotation is None else _parse(annotation)
    for name, value in (metadata.get("labels") or {}).items():
        if name.startswith(TAG_LABEL_PREFIX):  # the API server checked labels' form
            pairs.append((name[len(TAG_LABEL_PREFIX) :], value))
    tags = list(dict.fromkeys(pairs))
    if len(tags) > MAX_EXECUTION_TAGS:
        raise AnnotationError(
            f"{WHERE} and tag labels: {len(tags)} tags, more than the limit of {MAX_EXECUTION_TAGS}"
        )
    return tags


def _parse(annotation: Any) -> list[tuple[str, str]]:
    if not isinstance(annotation, str):
        raise AnnotationError(f"{WHERE}: expected text, not {type(annotation).__name__}")
    size = len(annotation.encode("utf-8", "surrogatepass"))
    if size > TAGS_ANNOTATION_LIMIT:
        raise AnnotationError(
            f"{WHERE} is {size} bytes, more than the limit of {TAGS_ANNOTATION_LIMIT}"
        )
    try:
        grouped = json.loads(annotation)
    except (ValueError, RecursionError) as error:
        raise AnnotationError(f"{WHERE} is not JSON: {error}") from None
    if not isinstance(grouped, dict):
        raise AnnotationError(
            f"{WHERE}: expected a JSON object of tag key -> list of values, not "
            f"{type(grouped).__name__}"
        )
    pairs: list[tuple[str, Any]] = []
    for key, values in grouped.items():
        for value in values if isinstance(values, list) else [values]:
            if not isinstance(value, str):
                raise AnnotationError(
                    f"{WHERE}: the values of tag {key[:200]!r} must be text (a string or a "
                    f"list of strings), not {type(value).__name__}"
                )
            pairs.append((key, value))
            if len(pairs) > MAX_EXECUTION_TAGS:
                raise AnnotationError(f"{WHERE}: more than {MAX_EXECUTION_TAGS} tags (the limit)")
    try:
        return check_tags(pairs, WHERE)
    except TagError as error:
        raise AnnotationError(str(error)) from None
