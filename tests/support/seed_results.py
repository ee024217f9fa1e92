"""What the seed's subrun example (examples/subrun.py) returns wherever it runs: two groups of
ten records, each group in a job process of its own and its records in further processes."""

from __future__ import annotations

import os
from typing import Any


def check_subrun_example_groups(groups: list[dict[str, Any]]) -> None:
    assert [group["name"] for group in groups] == ["root_on_batch", "root_on_batch"]
    assert [[r["value"] for r in group["value"]] for group in groups] == [
        list(range(2, 12)),
        list(range(12, 22)),
    ]
    for group in groups:
        record_pids = {record["pid"] for record in group["value"]}
        assert group["pid"] != os.getpid()  # each group ran in its own job process...
        assert group["pid"] not in record_pids  # ...and its records in further processes
        assert len(record_pids) > 1
        assert all(record["name"] == "process_record" for record in group["value"])
    assert groups[0]["pid"] != groups[1]["pid"]
