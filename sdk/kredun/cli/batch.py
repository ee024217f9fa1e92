"""`kredun batch-logs JOB_ID`: the CloudWatch log of an AWS Batch job.

Imported to build the argument parser: nothing heavy at the top.
"""

from __future__ import annotations

import argparse
from typing import Any


def add_batch_commands(commands: Any) -> None:
    """Add the AWS Batch subcommands to the `kredun` subparsers."""
    logs = commands.add_parser(
        "batch-logs",
        help="print the log of an AWS Batch job (failed jobs name theirs in the error)",
        description="Print the CloudWatch log of an AWS Batch job run by the batch executor: "
        "its latest attempt, or --attempt N. Region, endpoint and log group come from the "
        "executor's configuration in .kredun/kredun.toml, else from boto3's.",
    )
    logs.add_argument("job_id", metavar="JOB_ID", help="Batch job id (`<parent>:<i>` for a child)")
    logs.add_argument(
        "--executor", default="batch", metavar="NAME", help="executor to take settings from"
    )
    logs.add_argument("--attempt", type=int, metavar="N", help="attempt number, from 1")
    logs.add_argument("--tail", type=int, metavar="LINES", help="only the last LINES lines")


def batch_logs_command(args: argparse.Namespace) -> int:
    from ..config import project_config
    from ..errors import ConfigError
    from ..executors.batch import BatchError
    from ..executors.batch_api import BatchApi
    from ..executors.batch_options import ExecutorSettings

    configured = project_config().executors.get(args.executor, {})
    options = {key: value for key, value in configured.items() if key != "type"}
    api = BatchApi(ExecutorSettings.parse(args.executor, {"type": "batch", **options}))
    found = api.describe([args.job_id])
    if not found:
        raise BatchError(f"AWS Batch job {args.job_id} does not exist")
    job = found[0]
    streams = [attempt.get("container", {}).get("logStreamName") for attempt in job["attempts"]]
    streams = streams or [job.get("container", {}).get("logStreamName")]
    if args.attempt is not None and not 1 <= args.attempt <= len(streams):
        raise ConfigError(f"AWS Batch job {args.job_id} made {len(streams)} attempt(s)")
    stream = streams[(args.attempt or len(streams)) - 1]
    if not stream:
        raise BatchError(f"AWS Batch job {args.job_id} ({job['status']}) has no log yet")
    for line in api.log_lines(stream, tail=args.tail):
        print(line)
    return 0
