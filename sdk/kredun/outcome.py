"""A job's outcome: the small JSON document a worker reports when its task has run.

A job hands its result back in two parts: the result blob, written to the value store of
its cache scope under the sha1 of its bytes, and this outcome, which says what the blob is.
On Kubernetes the outcome is the container's termination message (so it must fit the
kubelet's 4096 bytes); for AWS Batch it is a value-store object under a key both sides
compute. The receiving side (possibly the operator, which trusts no job) parses it strictly
here, then checks the blob's bytes against `hash` and `size` before recording anything.

Success::

    {"version": 1, "kind": "value" | "plan", "hash": "<40 hex>", "size": 123,
     "type": "builtins.int", "preview": "42", "truth": true, "files": false}

`truth` is bool(result) computed in the job (null if bool() raised). `files` says whether
the value holds a `File` or `Dir`, whose validity depends on the world outside the cache;
outcomes of workers older than this field omit it, which means false. Failure (the task
raised)::

    {"version": 1, "error": {"classes": ["builtins.ValueError", ..., "builtins.BaseException"],
                             "message": "...", "hash": "<40 hex>" | null}}

A subrun job whose nested scheduler kept its provenance in memory adds, to either form,
`"provenance": {"hash": "<40 hex>", "size": 123}`, naming the provenance fragment it
stored (kredun.provenance.fragment), or, when that fragment was too large to export,
`"provenance_dropped": <number of jobs left out>`. Other outcomes have neither field.

`classes` follows the exception's MRO; `hash` names the pickled exception's blob, null if
it could not be pickled. `type`, `preview`, `message` and the class names are text the
job's code chose: whoever shows them escapes them (kredun_operator.text).

This module imports no deserialiser: the operator imports it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from .bounds import is_hash, strict_json_object
from .errors import OutcomeError

OUTCOME_VERSION = 1
# Where `kredun worker` writes the outcome: the file this variable names (a Pod's
# termination message file), else (unless the next is set) the last line of its stdout.
OUTCOME_PATH_VARIABLE = "KREDUN_OUTCOME_PATH"
# Set (AWS Batch): the outcome goes to the value store, under `outcome_key($AWS_BATCH_JOB_ID)`.
OUTCOME_STORE_VARIABLE = "KREDUN_OUTCOME_TO_STORE"
MAX_OUTCOME_BYTES = 4096  # a Pod's termination message is cut there
# The largest value blob a receiver hashes to check it (plans have their own cap,
# kredun.domains.MAX_PLAN_BYTES). Large values are hashed in chunks, not held, but hashing
# more would tie the receiver up for minutes.
MAX_RESULT_BYTES = 16 * 1024**3
KINDS = ("value", "plan")
TYPE_LIMIT = 200
PREVIEW_LIMIT = 200  # as provenance rows keep previews
MESSAGE_LIMIT = 1000
CLASS_NAME_LIMIT = 200
CLASSES_LIMIT = 32

_SUCCESS_KEYS = frozenset({"version", "kind", "hash", "size", "type", "preview", "truth"})
_PROVENANCE_KEYS = frozenset({"provenance", "provenance_dropped"})
_OPTIONAL_SUCCESS_KEYS = frozenset({"files"}) | _PROVENANCE_KEYS
_FAILURE_KEYS = frozenset({"version", "error"})
_ERROR_KEYS = frozenset({"classes", "message", "hash"})
_FRAGMENT_KEYS = frozenset({"hash", "size"})


@dataclass(frozen=True)
class TaskFailure:
    """What a job reports of the exception its task raised."""

    classes: tuple[str, ...]
    message: str
    hash: str | None = None


@dataclass(frozen=True)
class FragmentRef:
    """Where a subrun job stored its provenance fragment: the sha1 and size of its bytes."""

    hash: str
    size: int


@dataclass(frozen=True)
class Outcome:
    """A parsed outcome: a result (`kind`, `hash`, ...) or a task failure (`error`)."""

    kind: str = ""
    hash: str = ""
    size: int = 0
    type: str = ""
    preview: str = ""
    truth: bool | None = None
    files: bool = False
    error: TaskFailure | None = None
    provenance: FragmentRef | None = None
    provenance_dropped: int | None = None  # jobs of a fragment too large to export

    def to_json(self) -> str:
        """The outcome's JSON, at most MAX_OUTCOME_BYTES: free text is shortened to fit."""
        text_limit = max(PREVIEW_LIMIT, MESSAGE_LIMIT)
        while True:
            if self.error is None:
                data: dict[str, Any] = {
                    "version": OUTCOME_VERSION,
                    "kind": self.kind,
                    "hash": self.hash,
                    "size": self.size,
                    "type": self.type[: min(TYPE_LIMIT, text_limit)],
                    "preview": self.preview[: min(PREVIEW_LIMIT, text_limit)],
                    "truth": self.truth,
                    "files": self.files,
                }
            else:
                error = self.error
                data = {
                    "version": OUTCOME_VERSION,
                    "error": {
                        "classes": [
                            name[: min(CLASS_NAME_LIMIT, text_limit)]
                            for name in error.classes[:CLASSES_LIMIT]
                        ],
                        "message": error.message[: min(MESSAGE_LIMIT, text_limit)],
                        "hash": error.hash,
                    },
                }
            if self.provenance is not None:
                data["provenance"] = {"hash": self.provenance.hash, "size": self.provenance.size}
            if self.provenance_dropped is not None:
                data["provenance_dropped"] = self.provenance_dropped
            text = json.dumps(data, separators=(",", ":"))
            # Escaped control characters take up to six bytes each: shorten until it fits.
            if len(text.encode()) <= MAX_OUTCOME_BYTES or text_limit == 0:
                return text
            text_limit //= 2


def outcome_key(job_name: str) -> str:
    """The value-store key of the outcome of the job the platform calls `job_name` (an AWS
    Batch job id, `<parent>:<index>` for an array child): both sides compute it."""
    # hashlib, not kredun.hashing: that imports the serialiser, and this module must not.
    return hashlib.sha1(f"outcome:{job_name}".encode()).hexdigest()


def parse(text: str | bytes) -> Outcome:
    """The outcome `text` describes; OutcomeError naming the field at fault otherwise."""
    data = text.encode() if isinstance(text, str) else text
    if len(data) > MAX_OUTCOME_BYTES:
        raise OutcomeError(
            f"job outcome is {len(data)} bytes, over the limit of {MAX_OUTCOME_BYTES}"
        )
    if not data.strip():
        raise OutcomeError("job outcome is empty (the job reported nothing)")
    document = strict_json_object(data, "job outcome", OutcomeError)
    if document.get("version") != OUTCOME_VERSION or isinstance(document.get("version"), bool):
        raise OutcomeError(f"job outcome field 'version' must be {OUTCOME_VERSION}")
    provenance, dropped = _provenance(document)
    if "error" in document:
        _check_keys(document, _FAILURE_KEYS, "", _PROVENANCE_KEYS)
        return Outcome(
            error=_failure(document["error"]), provenance=provenance, provenance_dropped=dropped
        )
    _check_keys(document, _SUCCESS_KEYS, "", _OPTIONAL_SUCCESS_KEYS)
    kind = document["kind"]
    if kind not in KINDS:
        raise OutcomeError(f"job outcome field 'kind' must be one of {', '.join(KINDS)}")
    size = _whole(document["size"], "size")
    truth = document["truth"]
    if truth is not None and not isinstance(truth, bool):
        raise OutcomeError("job outcome field 'truth' must be true, false or null")
    files = document.get("files", False)
    if not isinstance(files, bool):
        raise OutcomeError("job outcome field 'files' must be true or false")
    return Outcome(
        kind=kind,
        hash=_hash(document["hash"], "hash"),
        size=size,
        type=_text(document["type"], "type", TYPE_LIMIT),
        preview=_text(document["preview"], "preview", PREVIEW_LIMIT),
        truth=truth,
        files=files,
        provenance=provenance,
        provenance_dropped=dropped,
    )


def _provenance(document: dict[str, Any]) -> tuple[FragmentRef | None, int | None]:
    """The optional fields of a subrun job's provenance fragment."""
    named, fragment = document.get("provenance"), None
    if named is not None:
        if not isinstance(named, dict):
            raise OutcomeError("job outcome field 'provenance' must be an object")
        _check_keys(named, _FRAGMENT_KEYS, "provenance.")
        fragment = FragmentRef(
            _hash(named["hash"], "provenance.hash"), _whole(named["size"], "provenance.size")
        )
    dropped = document.get("provenance_dropped")
    return fragment, None if dropped is None else _whole(dropped, "provenance_dropped")


def _whole(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise OutcomeError(f"job outcome field {field!r} must be a whole number >= 0")
    return value


def _failure(error: Any) -> TaskFailure:
    if not isinstance(error, dict):
        raise OutcomeError("job outcome field 'error' must be an object")
    _check_keys(error, _ERROR_KEYS, "error.")
    classes = error["classes"]
    if not isinstance(classes, list) or len(classes) > CLASSES_LIMIT:
        raise OutcomeError(
            f"job outcome field 'error.classes' must list at most {CLASSES_LIMIT} class names"
        )
    names = tuple(_text(name, "error.classes", CLASS_NAME_LIMIT) for name in classes)
    value_hash = error["hash"]
    return TaskFailure(
        classes=names,
        message=_text(error["message"], "error.message", MESSAGE_LIMIT),
        hash=None if value_hash is None else _hash(value_hash, "error.hash"),
    )


def _check_keys(
    document: dict[str, Any],
    expected: frozenset[str],
    prefix: str,
    optional: frozenset[str] = frozenset(),
) -> None:
    unknown = sorted(set(document) - expected - optional)
    if unknown:
        known = sorted(expected | optional)
        raise OutcomeError(
            f"job outcome has unknown field(s) {', '.join(prefix + k for k in unknown)[:200]} "
            f"(known: {', '.join(prefix + k for k in known)})"
        )
    missing = sorted(expected - set(document))
    if missing:
        raise OutcomeError(
            f"job outcome lacks field(s) {', '.join(prefix + key for key in missing)}"
        )


def _hash(value: Any, field: str) -> str:
    if is_hash(value):
        return value
    raise OutcomeError(f"job outcome field {field!r} must be 40 lowercase hex digits")


def _text(value: Any, field: str, limit: int) -> str:
    if not isinstance(value, str):
        raise OutcomeError(f"job outcome field {field!r} must be a string")
    if len(value) > limit:
        raise OutcomeError(
            f"job outcome field {field!r} is {len(value)} characters, over the limit of {limit}"
        )
    return value
