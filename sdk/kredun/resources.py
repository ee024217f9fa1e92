"""One meaning for the resource options `cpus` (alias `vcpus`), `memory` and `gpus`.

Every executor reads them here, so `memory=4` asks for the same on a Pod as on an AWS
Batch job, and a job that falls back from one to the other asks for the same again.

Accepted forms, wherever a resource is given (task options, executor options, an
Execution's `spec.resources`, the operator's `[jobs.resources]`):

- `cpus`: cores, as a number (`2`, `0.5`) or a Kubernetes CPU quantity (`"500m"`, `"2"`).
- `memory`: a number is GiB, as in redun (`4`, `0.5`); a string is a Kubernetes quantity
  (`"512Mi"`, `"4Gi"`, `"1G"`, `"1073741824"` bytes). Less than 1 MiB is refused: it is
  always a mistaken unit (`"512"` is 512 bytes).
- `gpus`: a whole number (`1`, or `"1"`).

Inside, cores are exact fractions and memory is bytes; `Resources` converts to what each
executor asks for (Kubernetes requests and limits, Batch vCPUs and MiB), rounding up, so
a job never gets less than it asked for.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from .errors import ResourceError

MIB = 2**20
GIB = 2**30
BATCH_VCPU_STEP = Fraction(1, 4)  # the finest vCPU amount AWS Batch accepts (Fargate)

# A Kubernetes quantity: a decimal number with a binary or decimal SI suffix or an exponent.
_QUANTITY = re.compile(
    r"^(?P<number>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
    r"(?:(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E)|[eE](?P<exponent>[+-]?[0-9]+))?$"
)
_SUFFIXES: dict[str, Fraction] = {
    "": Fraction(1), "m": Fraction(1, 1000),
    "k": Fraction(10**3), "M": Fraction(10**6), "G": Fraction(10**9), "T": Fraction(10**12),
    "P": Fraction(10**15), "E": Fraction(10**18),
    "Ki": Fraction(2**10), "Mi": Fraction(2**20), "Gi": Fraction(2**30), "Ti": Fraction(2**40),
    "Pi": Fraction(2**50), "Ei": Fraction(2**60),
}  # fmt: skip
_MAX_EXPONENT = 30  # "1e999999" must not make a number with a million digits

CPU_FORMS = 'a number of cores (2, 0.5) or a quantity such as "500m"'
MEMORY_FORMS = 'a number of GiB (4, 0.5) or a quantity such as "512Mi", "4Gi" or "1G"'
GPU_FORMS = "a whole number (0, 1, 2)"


def quantity(text: str) -> Fraction:
    """A Kubernetes quantity as an exact number: "500m" -> 1/2, "2Gi" -> 2147483648.
    Raises ValueError for anything else (signs included: resources are never negative)."""
    match = _QUANTITY.match(text.strip())
    if match is None:
        raise ValueError(f"not a quantity: {text!r}")
    number = Fraction(match["number"])
    if match["exponent"] is not None:
        exponent = int(match["exponent"])
        if abs(exponent) > _MAX_EXPONENT:
            raise ValueError(f"exponent out of range: {text!r}")
        return number * Fraction(10) ** exponent
    return number * _SUFFIXES[match["suffix"] or ""]


def _number(value: Any) -> Fraction | None:
    """A finite int or float as an exact fraction (of its shortest decimal form); None for
    anything that is not a number (bool included)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return Fraction(value) if isinstance(value, int) else Fraction(repr(value))


def _invalid(option: str, value: Any, forms: str) -> ResourceError:
    return ResourceError(f"{option} must be {forms}, not {value!r}")


def parse_cpus(value: Any, option: str = "cpus") -> Fraction:
    """Cores, more than zero."""
    cores = _number(value)
    if cores is None and isinstance(value, str):
        try:
            cores = quantity(value)
        except ValueError:
            cores = None
    if cores is None or cores <= 0:
        raise _invalid(option, value, CPU_FORMS)
    return cores


def parse_memory(value: Any, option: str = "memory") -> int:
    """Bytes (rounded up), at least 1 MiB."""
    number = _number(value)
    if number is not None:
        size: Fraction | None = number * GIB
    elif isinstance(value, str):
        try:
            size = quantity(value)
        except ValueError:
            size = None
    else:
        size = None
    if size is None or size <= 0:
        raise _invalid(option, value, MEMORY_FORMS)
    if size < MIB:
        raise ResourceError(
            f"{option} {value!r} is less than 1 MiB (a string without a unit is bytes); "
            f"use {MEMORY_FORMS}"
        )
    return math.ceil(size)


def parse_gpus(value: Any, option: str = "gpus") -> int:
    """A whole number of GPUs, zero or more."""
    count = _number(value)
    if count is None and isinstance(value, str):
        try:
            count = quantity(value)
        except ValueError:
            count = None
    if count is None or count < 0 or count.denominator != 1:
        raise _invalid(option, value, GPU_FORMS)
    return int(count)


@dataclass(frozen=True)
class Resources:
    """What one job asks for; None where it asks nothing (an executor's default applies)."""

    cpus: Fraction | None = None  # cores
    memory: int | None = None  # bytes
    gpus: int | None = None

    @classmethod
    def parse(cls, options: Mapping[str, Any], where: str = "") -> Resources:
        """The resources among task or executor options: `cpus` (or `vcpus`, AWS Batch's
        name for it), `memory`, `gpus`. `where` prefixes option names in errors, e.g.
        "spec.resources."."""
        cpus = {key: parse_cpus(options[key], where + key)
                for key in ("cpus", "vcpus") if options.get(key) is not None}  # fmt: skip
        if len(set(cpus.values())) > 1:
            raise ResourceError(f"{where}cpus and {where}vcpus differ; give one of them")
        memory, gpus = options.get("memory"), options.get("gpus")
        return cls(
            cpus=next(iter(cpus.values()), None),
            memory=None if memory is None else parse_memory(memory, where + "memory"),
            gpus=None if gpus is None else parse_gpus(gpus, where + "gpus"),
        )

    def over(self, defaults: Resources) -> Resources:
        """These resources, with `defaults` where these ask nothing."""
        return Resources(
            cpus=self.cpus if self.cpus is not None else defaults.cpus,
            memory=self.memory if self.memory is not None else defaults.memory,
            gpus=self.gpus if self.gpus is not None else defaults.gpus,
        )

    def exceeding(self, maximum: Resources) -> list[str]:
        """What is asked beyond `maximum`, e.g. ["gpus 2 > 1"]; [] when it fits."""
        checks: list[tuple[str, Any, Any, Callable[[Any], str]]] = [
            ("cpus", self.cpus, maximum.cpus, lambda cores: f"{float(cores):g}"),
            ("memory", self.memory, maximum.memory, memory_quantity),
            ("gpus", self.gpus, maximum.gpus, str),
        ]
        return [
            f"{name} {show(asked)} > {show(limit)}"
            for name, asked, limit, show in checks
            if asked is not None and limit is not None and asked > limit
        ]

    def kubernetes(self) -> dict[str, Any]:
        """A container's `resources`: CPU is requested (not limited: a job may use idle
        cores); memory and GPUs are requested and limited."""
        requests: dict[str, str] = {}
        limits: dict[str, str] = {}
        if self.cpus is not None:
            requests["cpu"] = cpu_quantity(self.cpus)
        if self.memory is not None:
            requests["memory"] = limits["memory"] = memory_quantity(self.memory)
        if self.gpus:
            requests["nvidia.com/gpu"] = limits["nvidia.com/gpu"] = str(self.gpus)
        resources: dict[str, Any] = {}
        if requests:
            resources["requests"] = requests
        if limits:
            resources["limits"] = limits
        return resources

    def execution_spec(self) -> dict[str, Any]:
        """As an Execution's `spec.resources`, in the forms its CRD schema takes: cpus a
        number, memory a quantity string, gpus an integer."""
        spec: dict[str, Any] = {}
        if self.cpus is not None:
            spec["cpus"] = int(self.cpus) if self.cpus.denominator == 1 else float(self.cpus)
        if self.memory is not None:
            spec["memory"] = memory_quantity(self.memory)
        if self.gpus is not None:
            spec["gpus"] = self.gpus
        return spec

    @property
    def batch_vcpus(self) -> float | None:
        """Cores as AWS Batch vCPUs, rounded up to a quarter (its finest amount)."""
        if self.cpus is None:
            return None
        return float(math.ceil(self.cpus / BATCH_VCPU_STEP) * BATCH_VCPU_STEP)

    @property
    def batch_memory(self) -> int | None:
        """Memory as AWS Batch wants it: MiB, rounded up."""
        return None if self.memory is None else math.ceil(Fraction(self.memory, MIB))


def cpu_quantity(cores: Fraction) -> str:
    """Cores as a Kubernetes CPU quantity, rounded up to a millicore: "2", "500m"."""
    millicores = math.ceil(cores * 1000)
    return str(millicores // 1000) if millicores % 1000 == 0 else f"{millicores}m"


def memory_quantity(size: int) -> str:
    """Bytes as a Kubernetes quantity in the largest binary unit that divides them."""
    for suffix, unit in (("Ti", 2**40), ("Gi", GIB), ("Mi", MIB), ("Ki", 2**10)):
        if size % unit == 0:
            return f"{size // unit}{suffix}"
    return str(size)
