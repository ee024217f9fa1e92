"""File, Dir and script() edit scenarios, each run by `kredun run` (and, for the differential
test, by `redun run` from redun 0.44.1) between edits of the world.

A scenario is one workflow source written for both tools (`{lib}` becomes `kredun` or
`redun`, `{files}` their files module) plus a list of steps: change something, run `main`,
and count which tasks ran. Tasks count themselves by appending their name to a log file
outside every watched path (a script appends from its shell command), so the counts are
the same measure for both tools. Each step's `ran` is what redun 0.44.1 did; where kredun
deliberately does something else, `redun_ran` records what redun did and `why` says why
kredun's behaviour is the right one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

HEADER = """\
import os
from collections import namedtuple
from dataclasses import dataclass
from {lib} import Dir, File, script, task
from {files} import ContentDir, ContentFile, glob_file

redun_namespace = "fs"
EXECUTOR = os.environ.get("FS_EXECUTOR", "default")


def note(name):
    with open(os.environ["FS_LOG"], "a") as log:
        log.write(name + "\\n")

"""

# What each tool needs besides the workflow: redun names its executors in a config file.
REDUN_CONFIG = """\
[backend]
db_uri = sqlite:///redun.db

[executors.default]
type = local
max_workers = 4

[executors.process]
type = local
mode = process
max_workers = 2
"""

Change = Callable[[Path], None]


@dataclass
class Step:
    ran: dict[str, int]
    change: Change | None = None
    args: tuple[str, ...] = ()
    fails: bool = False
    stderr: str = ""  # a failing step's stderr must contain this
    files: dict[str, str | None] = field(default_factory=dict)  # content after; None: absent
    # Where kredun deliberately differs from redun: what redun did, and why kredun is right.
    redun_ran: dict[str, int] | None = None
    redun_fails: bool | None = None
    why: str = ""


@dataclass
class Scenario:
    name: str
    workflow: str
    steps: list[Step]
    inputs: dict[str, str] = field(default_factory=dict)
    executor: str = "default"

    def source(self, lib: str) -> str:
        files = {"kredun": "kredun.files", "redun": "redun.file"}[lib]
        return HEADER.format(lib=lib, files=files) + self.workflow


@dataclass
class Outcome:
    returncode: int
    stdout: str
    stderr: str
    ran: dict[str, int]


# -- changes to the world -----------------------------------------------------------------


def _later_mtime(path: Path) -> None:
    """Give a path a modification time after its last one, as a later edit would have, even
    when the file system's clock granularity would make two writes look simultaneous."""
    info = path.stat()
    later = info.st_mtime_ns + 1_000_000_000
    os.utime(path, ns=(later, later))


def write(relative: str, text: str) -> Change:
    def change(directory: Path) -> None:
        path = directory / relative
        existed = path.exists()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        if existed:
            _later_mtime(path)

    return change


def write_keeping_mtime(relative: str, text: str) -> Change:
    """An edit that leaves size and modification time as they were."""

    def change(directory: Path) -> None:
        path = directory / relative
        before = path.stat()
        assert len(text.encode()) == before.st_size, "the edit must keep the size"
        path.write_text(text)
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))

    return change


def touch(relative: str) -> Change:
    return lambda directory: _later_mtime(directory / relative)


def remove(relative: str) -> Change:
    def change(directory: Path) -> None:
        path = directory / relative
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()

    return change


def rename(source: str, target: str) -> Change:
    def change(directory: Path) -> None:
        (directory / source).rename(directory / target)

    return change


def recreate(relative: str) -> Change:
    """Delete a file and write the same bytes again: a new file, later mtime, same size."""

    def change(directory: Path) -> None:
        path = directory / relative
        data = path.read_bytes()
        before = path.stat().st_mtime_ns
        path.unlink()
        path.write_bytes(data)
        later = before + 1_000_000_000
        os.utime(path, ns=(later, later))

    return change


def edit_workflow(old: str, new: str) -> Change:
    def change(directory: Path) -> None:
        path = directory / "wf.py"
        source = path.read_text()
        assert old in source, f"{old!r} is not in the workflow"
        path.write_text(source.replace(old, new))

    return change


def link(relative: str, target: str) -> Change:
    """A symbolic link at `relative` to `target` (relative to the link's directory)."""
    return lambda directory: (directory / relative).symlink_to(target)


def mkdir(relative: str) -> Change:
    return lambda directory: (directory / relative).mkdir(parents=True)


# -- running ------------------------------------------------------------------------------


def prepare(scenario: Scenario, directory: Path, lib: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "wf.py").write_text(scenario.source(lib))
    if lib == "redun":
        (directory / ".redun").mkdir()
        (directory / ".redun" / "redun.ini").write_text(REDUN_CONFIG)
    for relative, text in scenario.inputs.items():
        write(relative, text)(directory)


def run_main(command: list[str], directory: Path, scenario: Scenario, args: tuple) -> Outcome:
    log = directory.parent / f"{directory.name}.log"
    log.unlink(missing_ok=True)
    done = subprocess.run(
        [*command, "run", "wf.py", "main", *args],
        cwd=directory, capture_output=True, text=True, timeout=300,
        env={**os.environ, "FS_LOG": str(log), "FS_EXECUTOR": scenario.executor},
    )  # fmt: skip
    names = log.read_text().split() if log.exists() else []
    return Outcome(done.returncode, done.stdout, done.stderr, dict(Counter(names)))


KREDUN = [sys.executable, "-m", "kredun"]


def play(scenario: Scenario, directory: Path, command: list[str], lib: str) -> Iterator[Outcome]:
    """Run every step of a scenario with one tool, yielding each step's outcome before the
    next step changes the world (so the caller can look at the files it left)."""
    prepare(scenario, directory, lib)
    for step in scenario.steps:
        if step.change is not None:
            step.change(directory)
        yield run_main(command, directory, scenario, step.args)


def check_step(scenario: Scenario, index: int, outcome: Outcome, directory: Path,
               ran: dict[str, int], fails: bool) -> None:  # fmt: skip
    step = scenario.steps[index]
    where = f"{scenario.name} step {index}"
    if fails:
        assert outcome.returncode != 0, f"{where}: should fail\n{outcome.stderr}"
    else:
        assert outcome.returncode == 0, f"{where}: failed\n{outcome.stderr}"
    assert outcome.ran == ran, f"{where}: ran {outcome.ran}, expected {ran}"
    for relative, text in step.files.items():
        path = directory / relative
        actual = path.read_text() if path.exists() else None
        assert actual == text, f"{where}: {relative} holds {actual!r}, expected {text!r}"


# -- the scenarios ------------------------------------------------------------------------

COUNT_ONE = """
@task(executor=EXECUTOR)
def count(item: {cls}) -> int:
    note("count")
    return len(item.read())


@task()
def main(path: str = "in.txt") -> int:
    note("main")
    return count({cls}(path))
"""

COUNT_DIR = """
@task()
def count(item: File) -> int:
    note("count:" + os.path.basename(item.path))
    return len(item.read())


@task()
def listing(data: Dir) -> list:
    note("listing")
    return [count(item) for item in data]


@task()
def main(path: str = "data") -> list:
    note("main")
    return listing(Dir(path))
"""

GLOB = """
@task()
def count(item: File) -> int:
    note("count:" + os.path.basename(item.path))
    return len(item.read())


@task()
def main(pattern: str = "data/*.txt") -> list:
    note("main")
    return [count(File(path)) for path in glob_file(pattern)]
"""

WRITER = """
@task(executor=EXECUTOR)
def make(path: str, text: str) -> File:
    note("make")
    out = File(path)
    out.write(text)
    return out


@task()
def main() -> File:
    note("main")
    return make("out/report.txt", "report")
"""

PASS_THROUGH = """
@task()
def upper(item: {cls}, path: str) -> {cls}:
    note("upper")
    out = {cls}(path)
    out.write(item.read().upper())
    return out


@task()
def size(item: {cls}) -> int:
    note("size")
    return len(item.read())


@task()
def main(path: str = "in.txt") -> int:
    note("main")
    return size(upper({cls}(path), "out/upper.txt"))
"""

MANY_OUTPUTS = """
@task()
def split(item: File) -> {shape}:
    note("split")
    words = item.read().split()
    files = [File(f"out/{{index}}.txt") for index in range(len(words))]
    for out, word in zip(files, words):
        out.write(word)
    return {build}


@task()
def main(path: str = "in.txt") -> {shape}:
    note("main")
    return split(File(path))
"""

OUT_DIR = """
@task()
def fill(item: File, path: str) -> Dir:
    note("fill")
    for index, word in enumerate(item.read().split()):
        File(f"{path}/{index}.txt").write(word)
    return Dir(path)


@task()
def main(path: str = "in.txt") -> Dir:
    note("main")
    return fill(File(path), "out")
"""

STRUCT_RESULT = """
Pair = namedtuple("Pair", ["name", "file"])


@dataclass
class Report:
    name: str
    file: File


@task()
def make(path: str) -> {kind}:
    note("make")
    out = File(path)
    out.write("report")
    return {kind}("report", out)


@task()
def main() -> {kind}:
    note("main")
    return make("out/report.txt")
"""

LAZY = """
@task()
def read(item: File) -> str:
    note("read")
    return item.read()


@task()
def combine(texts: list) -> str:
    note("combine")
    return "+".join(texts)


@task()
def plan(paths: list) -> str:
    note("plan")
    return combine([read(File(path)) for path in paths])


@task()
def main() -> str:
    note("main")
    return plan(["a.txt", "b.txt"])
"""

SCRIPT = """
@task()
def main(path: str = "in.txt") -> {shape}:
    note("main")
    return script(
        "echo script >> $FS_LOG; {command}",
        inputs=[File({source}).stage("staged.txt")],
        outputs={outputs},
        tempdir={tempdir},
        executor=EXECUTOR,
    )
"""

SCRIPT_TASK = """
@task(script=True)
def shout(item: File) -> str:
    note("shout")
    return f"echo script >> $FS_LOG; tr a-z A-Z < {item.path}"


@task()
def main(path: str = "in.txt") -> bytes:
    note("main")
    return shout(File(path))
"""

FAILING_SCRIPT = """
@task()
def main(path: str = "in.txt") -> bytes:
    note("main")
    return script(
        "echo script >> $FS_LOG; grep -q good staged.txt || "
        "{ echo 'no good line in staged.txt' >&2; exit 3; }; cat staged.txt",
        inputs=[File(path).stage("staged.txt")],
    )
"""

FILE_OPS = """
@task()
def copy(item: File, path: str) -> File:
    note("copy")
    return item.copy_to(File(path))


@task()
def check(path: str, marker: File) -> bool:
    note("check")
    return File(path).exists()


@task()
def staged(item: File) -> File:
    note("staged")
    staging = item.stage("local/copy.txt")
    local = staging.remote.copy_to(staging.local)
    return local


@task()
def main(path: str = "in.txt") -> list:
    note("main")
    return [copy(File(path), "out/copy.txt"), check("maybe.txt", File("maybe.txt")),
            staged(File(path))]
"""

REMOVER = """
@task()
def clean(path: str) -> File:
    note("clean")
    target = File(path)
    target.remove()
    return target


@task()
def main() -> File:
    note("main")
    return clean("scratch.txt")
"""

CLI_ARGS = """
@task()
def count(item: File) -> int:
    note("count")
    return len(item.read())


@task()
def total(data: Dir) -> int:
    note("total")
    return sum(len(item.read()) for item in data)


@task()
def main(item: File, data: Dir) -> list:
    note("main")
    return [count(item), total(data)]
"""

DEFAULT_ARG = """
@task()
def count(item: File) -> int:
    note("count")
    return len(item.read())


@task()
def main(item: File = File("in.txt")) -> int:
    note("main")
    return count(item)
"""

FILE_LIST_ARG = """
@task()
def join(items: list) -> str:
    note("join")
    return "".join(item.read() for item in items)


@task()
def main() -> str:
    note("main")
    return join([File("a.txt"), File("b.txt")])
"""

UNCACHED = """
@task(cache=False)
def count(item: File) -> int:
    note("count")
    return len(item.read())


@task()
def main(path: str = "in.txt") -> int:
    note("main")
    return count(File(path))
"""

SCRIPT_DIR_OUTPUT = """
@task()
def main(path: str = "in.txt") -> Dir:
    note("main")
    return script(
        "echo script >> $FS_LOG; mkdir -p parts; split -l 1 staged.txt parts/part-",
        inputs=[File(path).stage("staged.txt")],
        outputs=Dir("outdir").stage("parts"),
    )
"""

GLOB_DIRS = """
@task()
def size(sample: Dir) -> int:
    note("size:" + os.path.basename(sample.path))
    return sum(len(item.read()) for item in sample)


@task()
def main(pattern: str = "samples/*") -> list:
    note("main")
    return [size(Dir(path)) for path in glob_file(pattern)]
"""

CONTENT_DIR = """
@task()
def total(data: ContentDir) -> int:
    note("total")
    return sum(len(item.read()) for item in data)


@task()
def main(path: str = "data") -> int:
    note("main")
    return total(ContentDir(path))
"""

SCRIPT_PLAIN_OUTPUT = """
@task()
def main(path: str = "in.txt") -> File:
    note("main")
    return script(
        f"echo script >> $FS_LOG; sort {path} > sorted.txt",
        inputs=[File(path).stage(path)],
        outputs=File("sorted.txt"),
    )
"""

CODE_EDIT = """
@task()
def count(item: File) -> int:
    note("count")
    return len(item.read())


@task()
def double(n: int) -> int:
    note("double")
    return 2 * n


@task()
def main(path: str = "in.txt") -> int:
    note("main")
    return double(count(File(path)))
"""

SCRIPT_DIR_INPUT = """
@task()
def main(path: str = "data") -> bytes:
    note("main")
    return script(
        "echo script >> $FS_LOG; cat local/a.txt local/sub/c.txt | wc -c",
        inputs=[Dir(path).stage("local")],
    )
"""

IN = {"in.txt": "hello world\n"}
DATA = {"data/a.txt": "one\n", "data/b.txt": "two words\n", "data/sub/c.txt": "three\n"}
TXT = {"data/a.txt": "one\n", "data/b.txt": "two words\n", "data/c.csv": "x\n"}

# Where kredun deliberately differs from redun 0.44.1.
TEMPDIR_WHY = (
    "redun makes the temporary directory when script() is called and writes its path into the"
    " command, then deletes it after the first run; when the output is deleted, the cached"
    " call re-runs that old command, whose `cd` into the deleted directory fails. kredun makes"
    " the directory inside the job, so the script re-runs and writes the output again."
)
CONTENT_DIR_WHY = (
    "redun's ContentDir hashes its listing with plain File hashes (size and mtime), so a touch"
    " or an identical rewrite re-runs the call; kredun's hashes the files' bytes, which is"
    " what ContentDir promises, and the cached result is still what the task would compute."
)

# The failing script's message: its exit status and the end of its stderr (redun 0.44.1
# prints only "ScriptError: Last line: + exit 3", its `set -x` trace of the command).
SCRIPT_FAILURE = "ScriptError: script exited with status 3; stderr:\nno good line in staged.txt"

ARGS = ("--item", "in.txt", "--data", "data")

SCENARIOS = [
    Scenario(
        "file_edit",
        COUNT_ONE.replace("{cls}", "File"),
        inputs=IN,
        steps=[
            Step({"main": 1, "count": 1}),
            Step({}),
            Step({"main": 1, "count": 1}, write("in.txt", "hello there world\n")),
        ],
    ),
    Scenario(
        "file_touch",
        COUNT_ONE.replace("{cls}", "File"),
        inputs=IN,
        steps=[
            Step({"main": 1, "count": 1}),
            Step({"main": 1, "count": 1}, touch("in.txt")),
        ],
    ),
    Scenario(
        "file_same_size_edit",
        COUNT_ONE.replace("{cls}", "File"),
        inputs=IN,
        steps=[
            Step({"main": 1, "count": 1}),
            Step({"main": 1, "count": 1}, write("in.txt", "HELLO WORLD\n")),
            Step({}, write_keeping_mtime("in.txt", "jello world\n")),
        ],
    ),
    Scenario(
        "file_rename",
        COUNT_ONE.replace("{cls}", "File"),
        inputs=IN,
        steps=[
            Step({"main": 1, "count": 1}),
            Step({"main": 1, "count": 1}, rename("in.txt", "new.txt"), args=("--path", "new.txt")),
            Step({}, args=("--path", "new.txt")),
        ],
    ),
    Scenario(
        "file_delete_recreate",
        COUNT_ONE.replace("{cls}", "File"),
        inputs=IN,
        steps=[
            Step({"main": 1, "count": 1}),
            Step({"main": 1, "count": 1}, recreate("in.txt")),
        ],
    ),
    Scenario(
        "contentfile_touch_and_edit",
        COUNT_ONE.replace("{cls}", "ContentFile"),
        inputs=IN,
        steps=[
            Step({"main": 1, "count": 1}),
            Step({}, touch("in.txt")),
            Step({}, recreate("in.txt")),
            Step({"main": 1, "count": 1}, write_keeping_mtime("in.txt", "jello world\n")),
        ],
    ),
    Scenario(
        "file_process_executor",
        COUNT_ONE.replace("{cls}", "File"),
        inputs=IN,
        executor="process",
        steps=[
            Step({"main": 1, "count": 1}),
            Step({}),
            Step({"main": 1, "count": 1}, write("in.txt", "bye\n")),
        ],
    ),
    Scenario(
        "dir_add_remove_edit",
        COUNT_DIR,
        inputs=DATA,
        steps=[
            Step({"main": 1, "count:a.txt": 1, "count:b.txt": 1, "count:c.txt": 1, "listing": 1}),
            Step({}),
            Step({"main": 1, "count:d.txt": 1, "listing": 1}, write("data/d.txt", "four\n")),
            Step({"main": 1, "listing": 1}, remove("data/a.txt")),
            Step({"main": 1, "count:b.txt": 1, "listing": 1}, write("data/b.txt", "other words\n")),
            Step(
                {"main": 1, "count:c.txt": 1, "listing": 1},
                write("data/sub/c.txt", "nested edit\n"),
            ),
            Step(
                {"main": 1, "count:e.txt": 1, "listing": 1},
                write("data/sub/deeper/e.txt", "deep\n"),
            ),
            Step({"main": 1, "count:z.txt": 1, "listing": 1}, rename("data/b.txt", "data/z.txt")),
        ],
    ),
    # As in redun, a glob inside a task whose arguments are unchanged is not looked at
    # again: the added d.txt is not counted until the result holds a File that changed.
    # (A Dir argument, as in dir_add_remove_edit, follows added files.)
    Scenario(
        "glob_results_change",
        GLOB,
        inputs=TXT,
        steps=[
            Step({"main": 1, "count:a.txt": 1, "count:b.txt": 1}),
            Step({}),
            Step({}, write("data/d.txt", "four\n")),
            Step({}, write("data/c.csv", "not matched\n")),
            Step({"main": 1, "count:d.txt": 1}, remove("data/a.txt")),
            Step({"main": 1, "count:b.txt": 1}, write("data/b.txt", "edited\n")),
        ],
    ),
    Scenario(
        "output_delete_edit_replace",
        WRITER,
        steps=[
            Step({"main": 1, "make": 1}),
            Step({}),
            Step({"make": 1}, remove("out/report.txt"), files={"out/report.txt": "report"}),
            Step(
                {"make": 1}, write("out/report.txt", "tampered"), files={"out/report.txt": "report"}
            ),
            Step({"make": 1}, recreate("out/report.txt")),
            Step({"make": 1}, touch("out/report.txt")),
        ],
    ),
    Scenario(
        "output_process_executor",
        WRITER,
        executor="process",
        steps=[
            Step({"main": 1, "make": 1}),
            Step({}),
            Step({"make": 1}, remove("out/report.txt"), files={"out/report.txt": "report"}),
        ],
    ),
    Scenario(
        "output_list_of_files",
        MANY_OUTPUTS.format(shape="list", build="files"),
        inputs=IN,
        steps=[
            Step({"main": 1, "split": 1}),
            Step({}),
            Step({"split": 1}, remove("out/1.txt")),
            Step({"split": 1}, write("out/0.txt", "changed")),
        ],
    ),
    Scenario(
        "output_dict_of_files",
        MANY_OUTPUTS.format(shape="dict", build="{str(i): f for i, f in enumerate(files)}"),
        inputs=IN,
        steps=[
            Step({"main": 1, "split": 1}),
            Step({}),
            Step({"split": 1}, remove("out/0.txt"), files={"out/0.txt": "hello"}),
        ],
    ),
    Scenario(
        "output_dir",
        OUT_DIR,
        inputs=IN,
        steps=[
            Step({"main": 1, "fill": 1}),
            Step({}),
            Step({"fill": 1}, write("out/extra.txt", "extra")),
            Step({"fill": 1}, remove("out/0.txt"), files={"out/0.txt": "hello"}),
            Step({"fill": 1}, write("out/1.txt", "edited")),
        ],
    ),
    Scenario(
        "output_in_namedtuple",
        STRUCT_RESULT.format(kind="Pair"),
        steps=[
            Step({"main": 1, "make": 1}),
            Step({}),
            Step({"make": 1}, remove("out/report.txt"), files={"out/report.txt": "report"}),
        ],
    ),
    Scenario(
        "output_in_dataclass",
        STRUCT_RESULT.format(kind="Report"),
        steps=[
            Step({"main": 1, "make": 1}),
            Step({}),
            Step({"make": 1}, remove("out/report.txt"), files={"out/report.txt": "report"}),
        ],
    ),
    Scenario(
        "pass_through_file",
        PASS_THROUGH.replace("{cls}", "File"),
        inputs=IN,
        steps=[
            Step({"main": 1, "size": 1, "upper": 1}),
            Step({}),
            Step({"main": 1, "size": 1, "upper": 1}, touch("in.txt")),
            Step({"size": 1, "upper": 1}, remove("out/upper.txt")),
            Step({"main": 1, "size": 1, "upper": 1}, write("in.txt", "other text\n")),
        ],
    ),
    Scenario(
        "pass_through_contentfile",
        PASS_THROUGH.replace("{cls}", "ContentFile"),
        inputs=IN,
        steps=[
            Step({"main": 1, "size": 1, "upper": 1}),
            Step({"main": 1, "upper": 1}, write("in.txt", "HELLO WORLD\n")),
            Step({"main": 1, "size": 1, "upper": 1}, write("in.txt", "other text\n")),
        ],
    ),
    Scenario(
        "lazy_expression_over_files",
        LAZY,
        inputs={"a.txt": "a", "b.txt": "b"},
        steps=[
            Step({"main": 1, "combine": 1, "plan": 1, "read": 2}),
            Step({}),
            Step({"combine": 1, "plan": 1, "read": 1}, write("b.txt", "B")),
        ],
    ),
    Scenario(
        "script_file_output",
        SCRIPT.format(
            shape="File",
            command="tr a-z A-Z < staged.txt > out.txt",
            outputs='File("upper.txt").stage("out.txt")',
            tempdir=False,
            source="path",
        ),
        inputs=IN,
        steps=[
            Step({"main": 1, "script": 1}),
            Step({}),
            Step({"main": 1, "script": 1}, write("in.txt", "changed\n")),
            Step({"script": 1}, remove("upper.txt"), files={"upper.txt": "CHANGED\n"}),
            Step({"main": 1, "script": 1}, edit_workflow("tr a-z A-Z", "tr a-y A-Y")),
        ],
    ),
    Scenario(
        "script_tempdir",
        SCRIPT.format(
            shape="File",
            command="tr a-z A-Z < staged.txt > out.txt",
            outputs='File(os.path.abspath("upper.txt")).stage("out.txt")',
            tempdir=True,
            source="os.path.abspath(path)",
        ),
        inputs=IN,
        steps=[
            Step({"main": 1, "script": 1}),
            Step({}),
            Step(
                {"script": 1},
                remove("upper.txt"),
                redun_ran={},
                redun_fails=True,
                why=TEMPDIR_WHY,
            ),
        ],
    ),
    Scenario(
        "script_stdout",
        SCRIPT.format(
            shape="bytes",
            command="wc -w < staged.txt",
            outputs='File("-")',
            tempdir=False,
            source="path",
        ),
        inputs=IN,
        steps=[
            Step({"main": 1, "script": 1}),
            Step({}),
            Step({"main": 1, "script": 1}, write("in.txt", "one two three\n")),
        ],
    ),
    Scenario(
        "script_dict_and_list_outputs",
        SCRIPT.format(
            shape="dict",
            command="cut -c1 staged.txt > first; cut -c2 staged.txt > second",
            outputs='{"first": File("first.out").stage("first"), '
            '"rest": [File("second.out").stage("second")]}',
            tempdir=False,
            source="path",
        ),
        inputs=IN,
        steps=[
            Step({"main": 1, "script": 1}),
            Step({}),
            Step({"script": 1}, remove("second.out")),
        ],
    ),
    Scenario(
        "script_process_executor",
        SCRIPT.format(
            shape="File",
            command="tr a-z A-Z < staged.txt > out.txt",
            outputs='File("upper.txt").stage("out.txt")',
            tempdir=False,
            source="path",
        ),
        inputs=IN,
        executor="process",
        steps=[
            Step({"main": 1, "script": 1}),
            Step({}),
            Step({"script": 1}, remove("upper.txt"), files={"upper.txt": "HELLO WORLD\n"}),
        ],
    ),
    Scenario(
        "script_task_option",
        SCRIPT_TASK,
        inputs=IN,
        steps=[
            Step({"main": 1, "script": 1, "shout": 1}),
            Step({}),
            Step({"main": 1, "script": 1, "shout": 1}, write("in.txt", "changed\n")),
            Step({"script": 1, "shout": 1}, edit_workflow("tr a-z A-Z", "tr a-y A-Y")),
        ],
    ),
    Scenario(
        "script_failure",
        FAILING_SCRIPT,
        inputs={"in.txt": "bad\n"},
        steps=[
            Step({"main": 1, "script": 1}, fails=True, stderr=SCRIPT_FAILURE),
            Step({"script": 1}, fails=True, stderr=SCRIPT_FAILURE),
            Step({"main": 1, "script": 1}, write("in.txt", "good\n")),
            Step({}),
        ],
    ),
    Scenario(
        "file_ops_copy_exists_stage",
        FILE_OPS,
        inputs=IN,
        steps=[
            Step({"main": 1, "check": 1, "copy": 1, "staged": 1}),
            Step({}),
            Step({"main": 1, "check": 1}, write("maybe.txt", "now here")),
            Step({"copy": 1}, remove("out/copy.txt")),
            Step({"staged": 1}, remove("local/copy.txt")),
            Step({"main": 1, "copy": 1, "staged": 1}, write("in.txt", "edited\n")),
        ],
    ),
    Scenario(
        "removed_file_result",
        REMOVER,
        inputs={"scratch.txt": "x"},
        steps=[
            Step({"main": 1, "clean": 1}),
            Step({}),
            Step({"clean": 1}, write("scratch.txt", "back")),
        ],
    ),
    Scenario(
        "cli_file_and_dir_args",
        CLI_ARGS,
        inputs={**IN, **DATA},
        steps=[
            Step({"main": 1, "count": 1, "total": 1}, args=ARGS),
            Step({}, args=ARGS),
            Step({"main": 1, "count": 1}, write("in.txt", "edit\n"), args=ARGS),
            Step({"main": 1, "total": 1}, write("data/new.txt", "new\n"), args=ARGS),
            Step({"main": 1, "total": 1}, touch("data/sub/c.txt"), args=ARGS),
        ],
    ),
    Scenario(
        "default_file_arg",
        DEFAULT_ARG,
        inputs=IN,
        steps=[
            Step({"main": 1, "count": 1}),
            Step({}),
            Step({"main": 1, "count": 1}, write("in.txt", "edited\n")),
        ],
    ),
    Scenario(
        "file_list_arg",
        FILE_LIST_ARG,
        inputs={"a.txt": "a", "b.txt": "b"},
        steps=[
            Step({"main": 1, "join": 1}),
            Step({}),
            Step({"main": 1, "join": 1}, write("a.txt", "A")),
            Step(
                {"main": 1, "join": 1},
                remove("b.txt"),
                fails=True,
                stderr="FileNotFoundError: [Errno 2] No such file or directory: 'b.txt'",
            ),
        ],
    ),
    Scenario(
        "uncached_task_reads_file",
        UNCACHED,
        inputs=IN,
        steps=[
            Step({"main": 1, "count": 1}),
            Step({"count": 1}),
            Step({"main": 1, "count": 1}, write("in.txt", "edited\n")),
        ],
    ),
    Scenario(
        "script_dir_output",
        SCRIPT_DIR_OUTPUT,
        inputs={"in.txt": "one\ntwo\n"},
        steps=[
            Step({"main": 1, "script": 1}),
            Step({}),
            Step({"script": 1}, remove("outdir/part-ab")),
            Step({"script": 1}, write("outdir/extra", "x")),
            Step({"main": 1, "script": 1}, write("in.txt", "one\ntwo\nthree\n")),
        ],
    ),
    Scenario(
        "glob_directories",
        GLOB_DIRS,
        inputs={"samples/s1/r1.txt": "aa", "samples/s2/r1.txt": "b", "samples/s2/r2.txt": "c"},
        steps=[
            Step({"main": 1, "size:s1": 1, "size:s2": 1}),
            Step({}),
            Step({"main": 1, "size:s2": 1}, write("samples/s2/r3.txt", "dd")),
            Step({"main": 1, "size:s1": 1}, write("samples/s1/r1.txt", "edited")),
        ],
    ),
    Scenario(
        "contentdir_touch_and_edit",
        CONTENT_DIR,
        inputs=DATA,
        steps=[
            Step({"main": 1, "total": 1}),
            Step(
                {},
                touch("data/a.txt"),
                redun_ran={"main": 1, "total": 1},
                why=CONTENT_DIR_WHY,
            ),
            Step(
                {},
                recreate("data/sub/c.txt"),
                redun_ran={"main": 1, "total": 1},
                why=CONTENT_DIR_WHY,
            ),
            Step({"main": 1, "total": 1}, write("data/b.txt", "edited\n")),
            Step({"main": 1, "total": 1}, write("data/new.txt", "new\n")),
        ],
    ),
    Scenario(
        "script_plain_file_output",
        SCRIPT_PLAIN_OUTPUT,
        inputs={"in.txt": "b\na\n"},
        steps=[
            Step({"main": 1, "script": 1}, files={"sorted.txt": "a\nb\n"}),
            Step({}),
            Step({"script": 1}, remove("sorted.txt"), files={"sorted.txt": "a\nb\n"}),
            Step({"script": 1}, write("sorted.txt", "tampered")),
            Step({"main": 1, "script": 1}, write("in.txt", "c\nb\n")),
        ],
    ),
    Scenario(
        "task_code_edit",
        CODE_EDIT,
        inputs=IN,
        steps=[
            Step({"main": 1, "count": 1, "double": 1}),
            Step({}),
            Step({"double": 1}, edit_workflow("return 2 * n", "return n + n")),
            Step(
                {"count": 1},
                edit_workflow("return len(item.read())", "return len(item.read()) + 0"),
            ),
        ],
    ),
    Scenario(
        "script_dir_input",
        SCRIPT_DIR_INPUT,
        inputs=DATA,
        steps=[
            Step({"main": 1, "script": 1}),
            Step({}),
            Step({"main": 1, "script": 1}, write("data/sub/c.txt", "edited\n")),
            Step({"main": 1, "script": 1}, write("data/new.txt", "new\n")),
        ],
    ),
    Scenario(
        "dir_hidden_and_linked_files",
        COUNT_DIR,
        inputs={**DATA, "elsewhere/d.txt": "linked\n"},
        steps=[
            Step({"main": 1, "count:a.txt": 1, "count:b.txt": 1, "count:c.txt": 1, "listing": 1}),
            Step({}, write("data/.hidden", "not listed\n")),
            Step({"main": 1, "count:d.txt": 1, "listing": 1}, link("data/linked", "../elsewhere")),
            Step(
                {"main": 1, "count:d.txt": 1, "listing": 1},
                write("elsewhere/d.txt", "edited through the link\n"),
            ),
        ],
    ),
    Scenario(
        "dir_missing_then_empty_then_filled",
        COUNT_DIR,
        steps=[
            Step({"main": 1, "listing": 1}),
            Step({}, mkdir("data")),
            Step({"main": 1, "count:a.txt": 1, "listing": 1}, write("data/a.txt", "one\n")),
            Step({"main": 1}, remove("data")),
        ],
    ),
    Scenario(
        "output_dir_deleted",
        OUT_DIR,
        inputs=IN,
        steps=[
            Step({"main": 1, "fill": 1}),
            Step({"fill": 1}, remove("out")),
            Step({}, mkdir("out/empty")),
        ],
    ),
    Scenario(
        "dir_process_executor",
        COUNT_DIR.replace("@task()", "@task(executor=EXECUTOR)"),
        inputs=DATA,
        executor="process",
        steps=[
            Step({"main": 1, "count:a.txt": 1, "count:b.txt": 1, "count:c.txt": 1, "listing": 1}),
            Step({"main": 1, "count:d.txt": 1, "listing": 1}, write("data/d.txt", "four\n")),
            Step(
                {"main": 1, "count:c.txt": 1, "listing": 1},
                write("data/sub/c.txt", "nested edit\n"),
            ),
            Step({"main": 1, "listing": 1}, remove("data/a.txt")),
        ],
    ),
    Scenario(
        "script_task_process_executor",
        SCRIPT_TASK.replace("@task(script=True)", "@task(script=True, executor=EXECUTOR)"),
        inputs=IN,
        executor="process",
        steps=[
            Step({"main": 1, "script": 1, "shout": 1}),
            Step({}),
            Step({"main": 1, "script": 1, "shout": 1}, write("in.txt", "changed\n")),
        ],
    ),
]
