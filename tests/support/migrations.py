"""Alembic pointed at kredun's migrations, for tests that build a database at an older
schema revision and migrate it."""

from __future__ import annotations

from typing import Any

from alembic.config import Config
from kredun.provenance.store import MIGRATIONS_DIR


def alembic_config(connection: Any = None) -> Config:
    """Alembic's configuration for kredun's migrations, running on `connection` if given."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    if connection is not None:
        config.attributes["connection"] = connection
    return config
