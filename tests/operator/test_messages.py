"""Messages can't be forged: text users choose (task names, error messages, job output)
shows with its control characters escaped in the operator's log, Events and status; URIs
show without their passwords."""

from __future__ import annotations

import base64
import json
import logging
from concurrent.futures import Executor, Future

import pytest
from kredun.hashing import hash_bytes
from kredun.provenance.store import mask_uri
from kredun_operator.events import EventRecorder
from kredun_operator.status import StatusWriter
from kredun_operator.text import OneLineMessages, lines, one_line

from tests.operator.test_units import _FakeKube
from tests.support import workflows as flow
from tests.support.operator import operator_cluster

__all__ = ["operator_cluster"]  # a fixture: imported for pytest to find

FORGED = "ns.task\n[2026-01-01 00:00:00] kopf [INFO] forged\r\x1b[2K\u2028!"


def test_control_characters_are_escaped() -> None:
    assert one_line(FORGED) == (
        "ns.task\\n[2026-01-01 00:00:00] kopf [INFO] forged\\r\\x1b[2K\\u2028!"
    )
    assert lines("Traceback\n  line\x1b[31m\n") == "Traceback\n  line\\x1b[31m\n"
    assert one_line("plain text, ünïcode") == "plain text, ünïcode"


def test_status_fields_show_one_line_but_tracebacks_keep_theirs() -> None:
    kube = _FakeKube()
    writer = StatusWriter(kube, "ns", "run", {}, 0.0)
    writer.update(
        message=f"task {FORGED} failed",
        failure={"task": FORGED, "traceback": "one\ntwo\x1b"},
        result={"preview": "'a\\nb'\n| forged row"},
    )
    writer.condition("StoreAvailable", False, "Unreachable", "down\nForged: yes")
    writer.flush(force=True)
    (patch,) = kube.patches
    assert "\n" not in patch["message"] and "\\n[2026" in patch["message"]
    assert patch["failure"] == {"task": one_line(FORGED), "traceback": "one\ntwo\\x1b"}
    assert patch["result"]["preview"] == "'a\\nb'\\n| forged row"
    assert patch["conditions"][0]["message"] == "down\\nForged: yes"


class _Inline(Executor):
    def submit(self, fn, /, *args, **kwargs):  # type: ignore[override]
        future: Future = Future()
        future.set_result(fn(*args, **kwargs))
        return future


class _EventKube:
    def __init__(self) -> None:
        self.bodies: list[dict] = []

    def request(self, method, path, *, body=None, **_):
        self.bodies.append(body)
        return {}


def test_event_messages_are_one_line() -> None:
    kube = _EventKube()
    EventRecorder(kube, _Inline(), "ns", "run", "uid").warning("JobFailed", FORGED)
    (event,) = kube.bodies
    assert event["message"] == one_line(FORGED)


def test_log_records_are_one_line(caplog) -> None:
    # Not under "kredun": the engine's logger does not propagate to caplog's root handler.
    logger = logging.getLogger("test_operator_messages")
    caplog.handler.addFilter(OneLineMessages())
    with caplog.at_level(logging.INFO):
        logger.info("job %s failed", FORGED)
    (record,) = caplog.records
    assert record.getMessage() == f"job {one_line(FORGED)} failed"


@pytest.mark.parametrize(
    ("uri", "masked"),
    [
        (
            "postgresql+psycopg://kredun:s3cret@db:5432/k",
            "postgresql+psycopg://kredun:***@db:5432/k",
        ),
        ("postgresql://:s3cret@db/k", "postgresql://:***@db/k"),
        ("kredun:s3cret@db/k", "kredun:***@db/k"),
        ("postgresql://u:p@ss/w@db/k", "postgresql://u:***@db/k"),
        ("postgresql://db/k?user=u&password=s3cret", "postgresql://db/k?user=u&password=***"),
        ("postgresql://db/k?sslpassword=s3cret;x=1", "postgresql://db/k?sslpassword=***;x=1"),
        ("postgresql://db/k?PASSWORD=s3cret", "postgresql://db/k?PASSWORD=***"),
        ("postgresql://u@db/k", "postgresql://u@db/k"),
        ("sqlite:////data/kredun.db", "sqlite:////data/kredun.db"),
    ],
)
def test_mask_uri_hides_every_form_of_password(uri, masked) -> None:
    assert mask_uri(uri) == masked
    assert "s3cret" not in mask_uri(uri)


def test_a_forged_task_name_forges_nothing(operator_cluster) -> None:
    cluster = operator_cluster
    spec = cluster.plan_spec(flow.boom("kaput\n[INFO] all good"))
    plan_name = flow.boom.fullname
    plan = json.loads(base64.b64decode(spec["plan"]["inline"]))
    entry = plan["tasks"][plan["registry"].pop(plan_name)]
    entry["name"] = plan_name + "\n[INFO] forged line\x1b[2K"
    data = json.dumps(plan).encode()
    spec["plan"] = {"hash": hash_bytes(data), "inline": base64.b64encode(data).decode()}
    cluster.create("forged", spec)
    status = cluster.wait_for_phase("forged")
    assert status["phase"] == "Failed"
    assert "\n" not in status["message"] and "\x1b" not in status["message"]
    assert "\\n[INFO] forged line\\x1b[2K" in status["failure"]["task"]
    for event in cluster.events("forged"):
        assert "\n" not in event["message"] and "\x1b" not in event["message"]
    log = cluster.log_text()
    assert "\\n[INFO] forged line" in log, "the engine logs the failed job's call"
    assert "\n[INFO] forged line" not in log
