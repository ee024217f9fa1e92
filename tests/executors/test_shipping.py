"""Code shipped to another process keeps its file name and source for tracebacks."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

WORKFLOW = """
from kredun import task


@task()
def divide(a, b):
    ratio = a / b
    return ratio
"""

LOAD_AND_FAIL = """
import sys, traceback
import cloudpickle

task = cloudpickle.loads(open(sys.argv[1], "rb").read())
try:
    task.func(1, 0)
except ZeroDivisionError:
    traceback.print_exc()
"""


def test_shipped_task_traceback_shows_file_line_and_source_where_the_file_is_gone(tmp_path):
    module_dir = tmp_path / "src"
    module_dir.mkdir()
    source = module_dir / "shipped_flow_tb.py"
    source.write_text(WORKFLOW)
    payload = tmp_path / "task.bin"
    ship_it = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(module_dir)!r})
        from kredun.serialize import ship
        import shipped_flow_tb
        open({str(payload)!r}, "wb").write(ship(shipped_flow_tb.divide))
        """
    )
    subprocess.run([sys.executable, "-c", ship_it], check=True, cwd=tmp_path)
    source.unlink()  # the receiving side has only what was shipped

    done = subprocess.run(
        [sys.executable, "-c", LOAD_AND_FAIL, str(payload)],
        capture_output=True, text=True, cwd=tmp_path, check=True,
    )  # fmt: skip
    assert f'File "{source}", line 7, in divide' in done.stderr
    assert "ratio = a / b" in done.stderr
    assert "<dynamic-code>" not in done.stderr
    assert not Path(source).exists()
