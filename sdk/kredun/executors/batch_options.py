"""Options of the AWS Batch executor: parsed and checked without touching AWS.

The keys and their meaning are documented in `kredun.executors.batch`.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass
from fractions import Fraction
from typing import Any

from ..errors import ConfigError
from ..resources import Resources

# Options a task may override: `@task(executor="batch", cpus=2, memory="8Gi")`.
RESOURCE_KEYS = ("cpus", "vcpus", "memory", "gpus")  # read by kredun.resources
JOB_KEYS = ("job_queue", "image", *RESOURCE_KEYS, "role", "retries", "timeout")
EXECUTOR_KEYS = (
    "type", "job_name_prefix", "batch_window", "poll_interval", "region", "endpoint_url",
    "log_group", "environment",
)  # fmt: skip
MAX_RETRIES = 9  # Batch's retryStrategy allows 1-10 attempts
DEFAULT_RESOURCES = Resources(cpus=Fraction(1), memory=2 * 2**30, gpus=0)
DEFAULTS: dict[str, Any] = {
    "retries": 0,
    "job_name_prefix": "kredun",
    "batch_window": 0.3,
    "poll_interval": 2.0,
    "log_group": "/aws/batch/job",
}
# Batch job and job definition names: letters, digits, hyphens, underscores, up to 128.
_PREFIX = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


def _number(value: Any, key: str, where: str, kind: type = int, minimum: float = 0) -> Any:
    try:
        number = kind(value)
    except (TypeError, ValueError):
        number = None
    if isinstance(value, bool) or number is None or number < minimum:
        raise ConfigError(f"{where}: {key} must be a number >= {minimum}, not {value!r}")
    return number


@dataclass(frozen=True)
class JobShape:
    """What a job definition fixes: registered once per distinct shape and reused."""

    image: str
    vcpus: float
    memory: int  # MiB
    gpus: int
    role: str | None

    def definition_name(self, prefix: str) -> str:
        digest = hashlib.sha1(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()
        return f"{prefix}-def-{digest[:16]}"

    def container_properties(self) -> dict[str, Any]:
        requirements = [
            {"type": "VCPU", "value": f"{self.vcpus:g}"},
            {"type": "MEMORY", "value": str(self.memory)},
        ]
        if self.gpus:
            requirements.append({"type": "GPU", "value": str(self.gpus)})
        properties: dict[str, Any] = {
            "image": self.image,
            "command": ["kredun", "worker"],  # each submission gives the full command
            "resourceRequirements": requirements,
        }
        if self.role:
            properties["jobRoleArn"] = self.role
        return properties


@dataclass(frozen=True)
class JobSettings:
    """Everything a submission depends on; jobs with equal settings (and task) can share
    one array job."""

    queue: str
    shape: JobShape
    retries: int
    timeout: int | None


@dataclass(frozen=True)
class ExecutorSettings:
    name: str
    prefix: str
    batch_window: float
    poll_interval: float
    region: str | None
    endpoint_url: str | None
    log_group: str
    environment: dict[str, str]
    job_defaults: dict[str, Any]
    resources: Resources  # the executor's, over DEFAULT_RESOURCES

    @classmethod
    def parse(cls, name: str, options: dict[str, Any]) -> ExecutorSettings:
        where = f"executor {name!r}"
        unknown = set(options) - set(JOB_KEYS) - set(EXECUTOR_KEYS)
        if unknown:
            known = ", ".join(sorted((*JOB_KEYS, *EXECUTOR_KEYS)))
            raise ConfigError(f"{where}: unknown option(s) {', '.join(sorted(unknown))} "
                              f"(known: {known})")  # fmt: skip
        merged = {**DEFAULTS, **options}
        prefix = str(merged["job_name_prefix"])
        if not _PREFIX.match(prefix):
            raise ConfigError(f"{where}: job_name_prefix {prefix!r} must be 1-64 letters, "
                              "digits, '-' or '_', starting with a letter or digit")  # fmt: skip
        environment = merged.get("environment") or {}
        if not isinstance(environment, dict):
            raise ConfigError(f"{where}: environment must be a table of variables")
        try:
            resources = Resources.parse(options).over(DEFAULT_RESOURCES)
        except ConfigError as error:
            raise ConfigError(f"{where}: {error}") from None
        return cls(
            name=name,
            prefix=prefix,
            batch_window=_number(merged["batch_window"], "batch_window", where, float),
            poll_interval=_number(merged["poll_interval"], "poll_interval", where, float, 0.01),
            region=merged.get("region"),
            endpoint_url=merged.get("endpoint_url"),
            log_group=str(merged["log_group"]),
            environment={str(key): str(value) for key, value in environment.items()},
            job_defaults={
                key: merged[key] for key in JOB_KEYS if key in merged and key not in RESOURCE_KEYS
            },
            resources=resources,
        )

    def job_settings(self, task_options: dict[str, Any], resources: Resources) -> JobSettings:
        """The executor's job options overridden by a task's own, checked. `resources`:
        what the job asks for (its task options', or what it asked the executor it fell
        back from); the executor's resources fill in what it does not ask."""
        values = {**self.job_defaults,
                  **{k: v for k, v in task_options.items() if k in JOB_KEYS}}  # fmt: skip
        where = f"executor {self.name!r}"
        asked = resources.over(self.resources)
        vcpus, memory = asked.batch_vcpus, asked.batch_memory
        assert vcpus is not None and memory is not None  # DEFAULT_RESOURCES has them all
        for required in ("job_queue", "image"):
            if not values.get(required):
                raise ConfigError(f"{where}: option {required!r} is required")
        retries = _number(values["retries"], "retries", where)
        if retries > MAX_RETRIES:
            raise ConfigError(f"{where}: retries {retries} is more than AWS Batch allows "
                              f"({MAX_RETRIES + 1} attempts)")  # fmt: skip
        timeout = values.get("timeout")
        return JobSettings(
            queue=str(values["job_queue"]),
            shape=JobShape(
                image=str(values["image"]),
                vcpus=vcpus,
                memory=memory,
                gpus=asked.gpus or 0,
                role=str(values["role"]) if values.get("role") else None,
            ),
            retries=retries,
            timeout=None if timeout is None else _number(timeout, "timeout", where, int, 1),
        )
