"""Jobs within a job: `subrun` starts a nested scheduler inside one job, which runs its own
jobs in separate processes there (the seed `subrun-example.md`, runnable locally).

    kredun run examples/subrun.py main                      # outer jobs: local processes
    kredun run examples/subrun.py main --executor k8s       # outer jobs: Pods (operator)
"""

import os
import subprocess
import time

from kredun import subrun, task

kredun_namespace = "examples.subrun"

# The nested scheduler's configuration: every job it runs gets its own process.
NESTED_CONFIG = {"executors": {"default": {"type": "process", "max_workers": 10}}}
RECORD_SECONDS = 1.0


def uname() -> bytes:
    return subprocess.run(["uname", "-a"], capture_output=True, check=True).stdout


@task()
def process_record(record: int) -> dict:
    time.sleep(RECORD_SECONDS)  # stands for real work; lets the records spread over processes
    return {"name": "process_record", "pid": os.getpid(), "uname": uname(), "value": record + 1}


@task(executor="local")
def root_on_batch(records: list) -> dict:
    # Runs on the nested scheduler's own threads, inside the outer job.
    return {
        "name": "root_on_batch",
        "pid": os.getpid(),
        "uname": uname(),
        "value": [process_record(record) for record in records],
    }


@task()
def main(groups: int = 2, size: int = 10, executor: str = "process") -> dict:
    records = list(range(1, groups * size + 1))
    return {
        "name": "main",
        "results": [
            subrun(
                root_on_batch(records[start : start + size]),
                executor=executor,
                config=NESTED_CONFIG,
            )
            for start in range(0, len(records), size)
        ],
        "uname": uname(),
    }
