"""`cpus`, `memory`, `gpus`: one meaning on every executor (kredun.resources).

The conversions, their edge cases as properties, and that a Pod and an AWS Batch job
generated for the same task options ask for the same amounts.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kredun.errors import ConfigError, ResourceError
from kredun.executors.batch_options import ExecutorSettings
from kredun.resources import (
    GIB,
    MIB,
    Resources,
    cpu_quantity,
    memory_quantity,
    parse_cpus,
    parse_gpus,
    parse_memory,
    quantity,
)
from kredun_operator.podspec import PodTemplate, job_pod

# --- conversions ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("500m", Fraction(1, 2)),
        ("2", 2),
        ("1.5", Fraction(3, 2)),
        (".5", Fraction(1, 2)),
        ("2Gi", 2 * GIB),
        ("512Mi", 512 * MIB),
        ("1G", 10**9),
        ("1k", 1000),
        ("1E", 10**18),
        ("1e3", 1000),
        ("5E-1", Fraction(1, 2)),
        ("1073741824", GIB),
    ],
)
def test_quantities(text: str, value: Fraction) -> None:
    assert quantity(text) == value


@pytest.mark.parametrize("text", ["", "4GB", "lots", "-1", "+1", "1 Gi", "Gi", "1e999", "0x10"])
def test_not_quantities(text: str) -> None:
    with pytest.raises(ValueError, match=r"quantity|exponent"):
        quantity(text)


@pytest.mark.parametrize(
    ("value", "cores"),
    [(2, 2), (0.5, Fraction(1, 2)), (0.1, Fraction(1, 10)), ("500m", Fraction(1, 2)), ("3", 3)],
)
def test_cpus(value: Any, cores: Fraction) -> None:
    assert parse_cpus(value) == cores


@pytest.mark.parametrize(
    ("value", "size"),
    [(4, 4 * GIB), (0.5, 512 * MIB), (1.5, 1536 * MIB), ("512Mi", 512 * MIB),
     ("1.5Gi", 1536 * MIB), ("1G", 10**9), ("1048576", MIB)],
)  # fmt: skip
def test_memory(value: Any, size: int) -> None:
    assert parse_memory(value) == size


@pytest.mark.parametrize(("value", "count"), [(0, 0), (2, 2), ("1", 1), (2.0, 2)])
def test_gpus(value: Any, count: int) -> None:
    assert parse_gpus(value) == count


@pytest.mark.parametrize(
    ("parse", "value", "message"),
    [
        (parse_cpus, 0, "cpus must be a number of cores"),
        (parse_cpus, -1, "cpus must be"),
        (parse_cpus, True, "cpus must be"),
        (parse_cpus, "many", "cpus must be"),
        (parse_cpus, math.nan, "cpus must be"),
        (parse_cpus, math.inf, "cpus must be"),
        (parse_cpus, None, "cpus must be"),
        (parse_memory, "4GB", 'memory must be a number of GiB .* "512Mi"'),
        (parse_memory, 0, "memory must be"),
        (parse_memory, -2, "memory must be"),
        (parse_memory, False, "memory must be"),
        (parse_memory, [4], "memory must be"),
        (parse_memory, "512", "less than 1 MiB"),
        (parse_memory, "500m", "less than 1 MiB"),
        (parse_gpus, 0.5, "gpus must be a whole number"),
        (parse_gpus, -1, "gpus must be"),
        (parse_gpus, "500m", "gpus must be"),
        (parse_gpus, True, "gpus must be"),
    ],
)
def test_bad_values_name_the_option_and_the_forms(parse: Any, value: Any, message: str) -> None:
    with pytest.raises(ResourceError, match=message):
        parse(value)
    assert issubclass(ResourceError, ConfigError)  # CLI and operator report it in one line


def test_resources_from_options() -> None:
    assert Resources.parse({"vcpus": 2, "memory": 1, "image": "x"}) == Resources(2, GIB, None)
    assert Resources.parse({"cpus": "250m", "vcpus": 0.25}).cpus == Fraction(1, 4)
    with pytest.raises(ResourceError, match="cpus and vcpus differ"):
        Resources.parse({"cpus": 1, "vcpus": 2})
    with pytest.raises(ResourceError, match=r"^spec\.resources\.memory must be"):
        Resources.parse({"memory": "lots"}, "spec.resources.")
    assert Resources(cpus=Fraction(2)).over(Resources(1, GIB, 0)) == Resources(2, GIB, 0)
    assert Resources(2, 8 * GIB, 2).exceeding(Resources(4, 4 * GIB, 1)) == [
        "memory 8Gi > 4Gi",
        "gpus 2 > 1",
    ]


def test_output_forms() -> None:
    assert [cpu_quantity(Fraction(c)) for c in ("2", "0.5", "0.0001", "1.2345")] == [
        "2", "500m", "1m", "1235m"
    ]  # fmt: skip
    assert [memory_quantity(size) for size in (4 * GIB, 1536 * MIB, 3 * 1024, 10**9)] == [
        "4Gi", "1536Mi", "3Ki", "1000000000"
    ]  # fmt: skip
    resources = Resources(Fraction(1, 4), GIB + 1, 1)
    assert (resources.batch_vcpus, resources.batch_memory) == (0.25, 1025)
    assert Resources(Fraction(3, 10)).batch_vcpus == 0.5


# --- properties ----------------------------------------------------------------------------

positive_numbers = st.one_of(
    st.integers(min_value=1, max_value=10**6),
    st.floats(min_value=1e-3, max_value=1e6, allow_nan=False, allow_infinity=False),
)


@given(positive_numbers)
def test_cpus_round_trip_through_kubernetes_never_asks_less(cores: float) -> None:
    parsed = parse_cpus(cores)
    text = cpu_quantity(parsed)
    assert parse_cpus(text) >= parsed
    assert parse_cpus(text) - parsed < Fraction(1, 1000)
    assert parse_cpus(text) == parse_cpus(cpu_quantity(parse_cpus(text)))  # stable


@given(st.integers(min_value=MIB, max_value=2**50))
def test_memory_quantities_round_trip_exactly(size: int) -> None:
    assert parse_memory(memory_quantity(size)) == size


@given(st.floats(min_value=1 / 1024, max_value=1e4, allow_nan=False))
def test_memory_numbers_are_gib_and_batch_never_gets_less(gib: float) -> None:
    size = parse_memory(gib)
    assert size >= gib * GIB * (1 - 1e-12)
    mib = Resources(memory=size).batch_memory
    assert mib is not None and mib * MIB >= size > (mib - 1) * MIB


@given(
    st.integers(min_value=0, max_value=10**6),
    st.sampled_from(["", "k", "M", "G", "Ki", "Mi", "Gi", "Ti"]),
)
def test_quantity_strings_scale_by_their_suffix(number: int, suffix: str) -> None:
    unit = quantity(f"1{suffix}")
    assert quantity(f"{number}{suffix}") == number * unit


@given(st.text(max_size=12))
def test_any_text_is_a_size_or_one_clear_error(text: str) -> None:
    try:
        size = parse_memory(text)
    except ResourceError as error:
        assert str(error).startswith("memory ")
        assert "\n" not in str(error)
    else:
        assert size >= MIB


# --- both executors ask for the same ---------------------------------------------------------

TEMPLATE = PodTemplate(namespace="ns", execution="run", execution_uid="uid", image="img:1")
BATCH = ExecutorSettings.parse("batch", {"type": "batch", "job_queue": "q", "image": "img:1"})


def pod_requests(options: dict[str, Any]) -> dict[str, str]:
    pod = job_pod(
        TEMPLATE, name="p", task_name="t.f", eval_hash="e" * 40, job_id="j", options=options,
        resources=Resources.parse(options).over(TEMPLATE.resources), command=["true"],
    )  # fmt: skip
    return pod["spec"]["containers"][0]["resources"]["requests"]


@pytest.mark.parametrize(
    "options",
    [
        {"cpus": 2, "memory": 4, "gpus": 1},
        {"vcpus": 2, "memory": "4Gi"},
        {"cpus": "500m", "memory": "512Mi"},
        {"cpus": 0.5, "memory": 0.5, "gpus": "2"},
        {"cpus": 8, "memory": "1G"},
    ],
)
def test_a_pod_and_a_batch_job_ask_for_the_same(options: dict[str, Any]) -> None:
    requests = pod_requests(options)
    shape = BATCH.job_settings(options, Resources.parse(options)).shape
    assert quantity(requests["cpu"]) == Fraction(str(shape.vcpus))
    assert math.ceil(quantity(requests["memory"]) / MIB) == shape.memory
    assert int(requests.get("nvidia.com/gpu", "0")) == shape.gpus
    # memory=4 is 4 GiB on both (it once meant 4 MiB on Batch)
    if options.get("memory") == 4:
        assert shape.memory == 4096 and requests["memory"] == "4Gi"


@pytest.mark.parametrize(
    ("given", "spec"),
    [
        ({"cpus": "500m", "memory": 4}, {"cpus": 0.5, "memory": "4Gi"}),
        ({"vcpus": 2, "memory": "1G", "gpus": "1"}, {"cpus": 2, "memory": "1000000000", "gpus": 1}),
    ],
)
def test_submit_writes_resources_in_the_forms_the_crd_takes(given: dict, spec: dict) -> None:
    from tests.cluster.test_crd import spec_errors

    assert Resources.parse(given).execution_spec() == spec
    assert spec_errors({"task": "a.b", "image": "x", "resources": spec}) == []
    assert Resources.parse(spec, "spec.resources.") == Resources.parse(given)
