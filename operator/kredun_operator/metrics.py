"""Prometheus metrics of the operator (`--metrics-port`), kept to what an operator of the
operator needs: how many Executions in which phase, job throughput per executor, how long
the operator itself takes, and whether the Kubernetes API pushes back."""

from __future__ import annotations

import threading

from kredun.resource import PHASES
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.process_collector import ProcessCollector

# Seconds; the operator's own latencies are milliseconds when healthy, seconds when not.
LATENCY_BUCKETS = (
    0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0
)  # fmt: skip


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        self.executions = Gauge(
            "kredun_executions",
            "Executions in the watched namespaces, by phase",
            ["phase"],
            registry=self.registry,
        )
        self.jobs = Counter(
            "kredun_jobs",
            "Jobs by executor and event (started, succeeded, failed, cached)",
            ["executor", "event"],
            registry=self.registry,
        )
        self.pod_create_seconds = Histogram(
            "kredun_pod_create_seconds",
            "From a job handed to the k8s executor (ready to run) to its Pod created",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.reduction_seconds = Histogram(
            "kredun_reduction_seconds",
            "From a job's outcome reaching the scheduler to the end of the tick handling it",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.api_errors = Counter(
            "kredun_kube_api_errors",
            "Failed Kubernetes API requests by HTTP status (0: no answer)",
            ["code"],
            registry=self.registry,
        )
        for phase in PHASES:
            self.executions.labels(phase).set(0)
        self._phases: dict[str, str] = {}
        self._lock = threading.Lock()

    def execution_phase(self, uid: str, phase: str | None) -> None:
        """Record an Execution's phase as last seen; None once it is gone."""
        with self._lock:
            old = self._phases.pop(uid, None)
            if phase:
                self._phases[uid] = phase
            if old == phase:
                return
            if old:
                self.executions.labels(old).dec()
            if phase:
                self.executions.labels(phase).inc()

    def serve(self, port: int) -> None:
        start_http_server(port, registry=self.registry)
