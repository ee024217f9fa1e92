"""No silent hangs: task options and spec fields of the wrong shape, and Pods that can never
start, fail their job (and so the Execution) with a message naming the cause.

The local kubelet plays the parts a real one would: Unschedulable on a node too small,
ErrImagePull/ImagePullBackOff for an image it was told is missing, InvalidImageName, and
CreateContainerConfigError for a Secret the Pod's environment names that does not exist.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from kredun import task
from kredun.errors import TaskOptionError
from kredun.hashing import hash_bytes

from tests.support import workflows as flow
from tests.support.kube.testing import wait_for
from tests.support.operator import OperatorCluster

MISSING_IMAGE = "registry.invalid/kredun/none:0"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"node_selector": ["disktype=ssd"]}, "node_selector=['disktype=ssd'] must be a map"),
        ({"node_selector": {"disktype": 1}}, "must be a map of strings"),
        ({"tolerations": "gpu"}, "tolerations='gpu' must be a list of maps"),
        ({"tolerations": ["gpu"]}, "must be a list of maps"),
        ({"memory": "12x"}, "option memory='12x' must be a number of GiB"),
        ({"cpus": -1}, "option cpus=-1 must be a number of cores"),
        ({"gpus": 0.5}, "option gpus=0.5 must be a whole number"),
        ({"timeout": "1h"}, "timeout='1h' must be a number of seconds"),
        ({"image": ""}, "image='' must be a non-empty string"),
        ({"image_pull_policy": "Sometimes"}, "must be one of Always, IfNotPresent, Never"),
        ({"fallback_after": -2}, "fallback_after=-2 must be a number of seconds"),
    ],
)
def test_task_options_of_the_wrong_shape_name_the_option(options, message) -> None:
    with pytest.raises(TaskOptionError, match=r"task .*: option ") as caught:
        define(**options)
    assert message in str(caught.value)


def define(**options: Any) -> None:
    def identity(x: int) -> int:
        return x

    task(**options)(identity)


def test_valid_task_options_pass() -> None:
    define(
        node_selector={"disktype": "ssd"},
        tolerations=[{"key": "gpu", "operator": "Exists"}],
        memory="4Gi", cpus="500m", gpus=1, timeout=60, image="repo/img:1",
        image_pull_policy="Never", fallback_after=0,
    )  # fmt: skip


def plan_with_options(cluster: OperatorCluster, expr: Any, **options: Any) -> dict[str, Any]:
    """An Execution spec whose plan's task carries `options` that no @task checked: as a
    hand-made plan can."""
    spec = cluster.plan_spec(expr)
    plan = json.loads(base64.b64decode(spec["plan"]["inline"]))
    for entry in plan["tasks"].values():
        entry["options"] = {**entry.get("options", {}), **options}
    data = json.dumps(plan).encode()
    spec["plan"] = {"hash": hash_bytes(data), "inline": base64.b64encode(data).decode()}
    return spec


def test_pods_that_can_never_start_fail_their_job_with_the_reason(tmp_path: Path) -> None:
    config = '[jobs]\nunschedulable_after = 1\nvalue_store_secret = "no-such-secret"\n'
    kubelet = {"max_cpu": 1, "unpullable_images": [MISSING_IMAGE]}
    with OperatorCluster(tmp_path, kubelet_options=kubelet, operator_config=config) as cluster:
        cluster.create("pull", cluster.plan_spec(flow.inc(1), image=MISSING_IMAGE))
        cluster.create("badname", cluster.plan_spec(flow.inc(2), image="Not An Image"))
        cluster.create("nowhere", cluster.plan_spec(flow.inc.options(cpus=2)(3)))
        cluster.create("secret", cluster.plan_spec(flow.inc(4)))
        cluster.create("shape", plan_with_options(cluster, flow.inc(5), node_selector=["x"]))

        def failed(name: str) -> str:
            status = cluster.wait_for_phase(name, timeout=60)
            assert status["phase"] == "Failed", status
            return status["message"]

        pull = failed("pull")
        assert "ErrImagePull" in pull or "ImagePullBackOff" in pull
        assert MISSING_IMAGE in pull and "check spec.image" in pull
        assert "InvalidImageName for image 'Not An Image'" in failed("badname")
        nowhere = failed("nowhere")
        assert "stayed Unschedulable for 1s" in nowhere
        assert "Insufficient cpu" in nowhere or "cpu" in nowhere, nowhere
        secret = failed("secret")
        assert "CreateContainerConfigError" in secret and "no-such-secret" in secret, secret
        shape = failed("shape")
        assert "node_selector=['x'] must be a map of strings" in shape, shape
        for name in ("pull", "badname", "nowhere", "secret"):
            wait_for(lambda n=name: cluster.pods(n) == [], timeout=30, message=f"{name}'s pod")
        assert cluster.process is not None and cluster.process.poll() is None
