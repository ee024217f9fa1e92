"""The kredun Kubernetes operator: reduces `Execution` resources with kredun's scheduler.

kopf watches Executions; for each one a daemon runs the engine's `Scheduler` over the
Execution's JSON plan with `ReferencedValues`, and the `k8s` executor (`pods.PodExecutor`)
runs every reducible node as one Pod. The operator never unpickles, imports or executes
anything a user supplied (see the trust boundary in docs/architecture.md). The Execution
resource's identity, phases and labels are the SDK's: `kredun.resource`.
"""

from kredun.executors import register_executor_type

# The engine creates executors by type name; the SDK does not know this package.
register_executor_type("k8s", "kredun_operator.pods:PodExecutor")
