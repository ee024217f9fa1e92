"""`kredun operator`: run the Kubernetes operator that reduces Execution resources.

A thin command line over kopf (the rest of the operator needs `pip install 'kredun[k8s]'`).
The Helm chart renders exactly these flags. The SDK's `kredun` command knows no operator
code: it finds this one through the `kredun.commands` entry point (pyproject.toml).
"""

from __future__ import annotations

import argparse
import os

from kredun.errors import ConfigError

LOG_LEVELS = ("debug", "info", "warning", "error")


def add_operator_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "operator",
        help="run the Kubernetes operator (kopf) that reduces Execution resources",
        description="Serve Execution resources: reduce each one's plan with the kredun "
        "scheduler, one Pod per job. The stores come from $KREDUN_DATABASE_URI and "
        "$KREDUN_VALUE_STORE (or --config).",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--standalone", action="store_true", help="run alone, without kopf peering (default)"
    )
    mode.add_argument(
        "--peering",
        metavar="NAME",
        help="coordinate with other replicas through the kopf peering object NAME",
    )
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument(
        "--all-namespaces", action="store_true", help="serve Executions in every namespace"
    )
    scope.add_argument(
        "--namespace",
        action="append",
        metavar="NS",
        help="serve Executions in NS (repeatable; default: $POD_NAMESPACE, else 'default')",
    )
    parser.add_argument(
        "--health-port", type=int, metavar="PORT", help="serve liveness at :PORT/healthz"
    )
    parser.add_argument(
        "--metrics-port", type=int, metavar="PORT", help="serve Prometheus metrics at :PORT"
    )
    parser.add_argument("--config", metavar="FILE", help="kredun.toml with job defaults")
    parser.add_argument("--log-level", choices=LOG_LEVELS, default="info", help="(default: info)")
    parser.set_defaults(handler=operator_command)


def operator_command(args: argparse.Namespace) -> int:
    try:
        from .main import OperatorOptions, run_operator
    except ImportError as error:
        raise ConfigError(
            f"the operator is not installed ({error}): pip install 'kredun[k8s]'"
        ) from None
    if args.all_namespaces:
        namespaces = None
    else:
        namespaces = args.namespace or [os.environ.get("POD_NAMESPACE") or "default"]
    return run_operator(
        OperatorOptions(
            namespaces=namespaces,
            peering=args.peering,
            health_port=args.health_port,
            metrics_port=args.metrics_port,
            config=args.config,
            log_level=args.log_level,
        )
    )
