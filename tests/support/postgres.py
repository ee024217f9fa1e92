"""PostgreSQL for tests: a fresh, uniquely named database per test, and a `store_uri` fixture
that runs a test once on SQLite and once on PostgreSQL.

The server comes from `KREDUN_TEST_POSTGRES_URI` (`.ci/run` starts one and sets it). Without
it PostgreSQL tests are skipped, unless `KREDUN_REQUIRE_POSTGRES=1` (CI), where a missing
server must fail rather than silently skip.

Each test gets its own database (`CREATE DATABASE kredun_t_<random>`, dropped afterwards), so
tests never see each other's rows and run safely in parallel under pytest-xdist.

Using the fixtures from a test module (there is deliberately no conftest.py): import them,
and pytest finds them in the module's namespace:

    from tests.support.postgres import postgres_database_uri, store_uri  # noqa: F401

    def test_something(store_uri):  # noqa: F811  (runs as [sqlite] and [postgres])
        store = ProvenanceStore(store_uri)

(ruff sees the parameter as redefining the imported name, hence the `noqa: F811`.)
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

URI_VARIABLE = "KREDUN_TEST_POSTGRES_URI"
REQUIRE_VARIABLE = "KREDUN_REQUIRE_POSTGRES"


def postgres_uri() -> str:
    """The test server's URI; skips the calling test if there is none (fails under CI)."""
    uri = os.environ.get(URI_VARIABLE)
    if not uri:
        if os.environ.get(REQUIRE_VARIABLE) == "1":
            pytest.fail(f"{REQUIRE_VARIABLE}=1 but {URI_VARIABLE} is not set", pytrace=False)
        pytest.skip(f"set {URI_VARIABLE} to run PostgreSQL tests (.ci/run shows how)")
    return uri


@contextmanager
def fresh_postgres_database(server_uri: str) -> Iterator[str]:
    """Create an empty database on the server, yield its URI, drop it afterwards.

    `WITH (FORCE)` ends connections a test left open, so the drop never blocks.
    """
    url = make_url(server_uri)
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    name = f"kredun_t_{uuid.uuid4().hex[:16]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
        try:
            yield url.set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as connection:
                connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.dispose()


@pytest.fixture
def postgres_database_uri() -> Iterator[str]:
    """The URI of a new, empty PostgreSQL database, dropped after the test."""
    with fresh_postgres_database(postgres_uri()) as uri:
        yield uri


def sqlite_file_uri(directory: Path) -> str:
    return f"sqlite:///{directory / 'kredun.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_uri(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty provenance database: a SQLite file under tmp_path, or a fresh PostgreSQL one.

    Self-contained (it does not request `postgres_database_uri`), so importing this one
    fixture is enough.
    """
    if request.param == "sqlite":
        yield sqlite_file_uri(tmp_path)
        return
    with fresh_postgres_database(postgres_uri()) as uri:
        yield uri
