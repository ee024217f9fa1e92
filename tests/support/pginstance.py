"""A PostgreSQL server of a test's own (initdb + pg_ctl on a free port), which the test may
stop and start at will without disturbing the shared test server other tests use."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.support.operator import free_port

BIN = Path("/usr/lib/postgresql/15/bin")
SERVER_USER = "postgres"  # initdb refuses to run as root


class PostgresInstance:
    def __init__(self) -> None:
        self.port = free_port()
        # Under /tmp, not pytest's tmp_path: the server's user must reach the directory.
        self.root = Path(tempfile.mkdtemp(prefix="kredun-pg-"))
        self.data = self.root / "data"
        self.uri = f"postgresql+psycopg://{SERVER_USER}@127.0.0.1:{self.port}/postgres"

    def _run(self, *argv: str) -> None:
        command = [str(BIN / argv[0]), *argv[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", SERVER_USER, "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def __enter__(self) -> PostgresInstance:
        if os.geteuid() == 0:
            shutil.chown(self.root, SERVER_USER)
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", SERVER_USER)
        self.start()
        return self

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-w", "-l",
                  str(self.root / "server.log"), "start")  # fmt: skip

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def __exit__(self, *exc_info: object) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):  # already stopped
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
