"""Tasks the operator tests (and bench/operator_bench.py) run in job Pods.

Pods import it from the repository (the local kubelet puts the repository on their
PYTHONPATH, as a job image would contain the workflow code); the operator never does.
"""

from __future__ import annotations

import time
from pathlib import Path

from kredun import Dir, File, script, task

kredun_namespace = "opflow"


@task()
def inc(x: int) -> int:
    return x + 1


@task()
def add(a: int, b: int) -> int:
    return a + b


@task()
def total(values: list[int]) -> int:
    return sum(values)


@task()
def fanout(n: int, base: int = 0) -> list:
    """Returns expressions: the graph grows by n jobs."""
    return [inc(base + i) for i in range(n)]


@task()
def quotient_remainder(n: int, d: int) -> dict:
    return {"q": n // d, "r": n % d}


@task()
def boom(message: str) -> int:
    raise ValueError(message)


@task(retries=1)
def flaky(marker_dir: str) -> str:
    """Fails on its first attempt, succeeds on the second (the marker survives the Pod)."""
    marker = Path(marker_dir) / "flaky-attempted"
    if not marker.exists():
        marker.write_text("1")
        raise RuntimeError("flaky failure, first attempt")
    return "recovered"


@task()
def sleepy(i: int, seconds: float) -> int:
    time.sleep(seconds)
    return i


@task()
def describe(value: object) -> str:
    return type(value).__name__


@task()
def timed(i: int, seconds: float, directory: str) -> int:
    """Sleeps, and records when it ran: `<directory>/<i>` holds "start end"."""
    start = time.time()
    time.sleep(seconds)
    Path(directory, str(i)).write_text(f"{start} {time.time()}")
    return i


@task()
def count_words(item: File) -> int:
    return len(item.read().split())


@task()
def shout_file(item: File, out_dir: str) -> File:
    """A script job of its own: the input staged into a temporary directory, the output back."""
    return script(
        "tr a-z A-Z < in.txt > out.txt",
        inputs=[item.stage("in.txt")],
        outputs=File(f"{out_dir}/{item.basename()}").stage("out.txt"),
        tempdir=True,
    )


@task()
def file_pipeline(data: Dir, out_dir: str) -> dict:
    items = list(data)
    return {
        "counts": [count_words(item) for item in items],
        "shouted": [shout_file(item, out_dir) for item in items],
    }


@task()
def write_report(path: str, text: str) -> dict:
    """A plain task (no script) whose result holds the File it wrote."""
    report = File(path)
    report.write(text)
    return {"report": report, "chars": len(text)}


@task()
def poison_own_result(token: str) -> str:
    """Writes other bytes under the hash its own result will be stored at (the store keeps
    the first blob of a hash): the receiver must notice the mismatch."""
    import os

    from kredun.hashing import hash_bytes
    from kredun.serialize import dumps
    from kredun.valuestore import open_value_store

    result = f"honest {token}"
    store = open_value_store(os.environ["KREDUN_VALUE_STORE"])
    store.put(hash_bytes(dumps(result)), b"forged bytes")
    return result


@task()
def value_store_view(root: str) -> dict:
    """What a job sees of the value store's root directory and its scope directories."""
    import os

    scopes = {kind: sorted(os.listdir(f"{root}/{kind}"))
              for kind in ("ns", "shared") if os.path.isdir(f"{root}/{kind}")}  # fmt: skip
    return {"store": os.environ["KREDUN_VALUE_STORE"], "scopes": scopes}


@task()
def forge_outcome(text: str) -> int:
    """Writes `text` as its Pod's outcome, and sends the worker's own report elsewhere."""
    import os

    path = os.environ["KREDUN_OUTCOME_PATH"]
    os.environ["KREDUN_OUTCOME_PATH"] = os.devnull
    with open(path, "w") as file:
        file.write(text)
    return 1


@task()
def blob(n: int) -> bytes:
    return b"x" * n
