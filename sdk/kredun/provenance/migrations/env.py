"""Alembic environment for the provenance store.

`ProvenanceStore` runs migrations on a connection it has already opened, locked and begun a
transaction on, and hands it over in `config.attributes["connection"]`; the migrations then
commit or roll back with that transaction. Running alembic any other way is not supported:
there is no alembic.ini, and the URI handling (drivers, SQLite pragmas) lives in the store.
"""

from alembic import context

connection = context.config.attributes.get("connection")
if connection is None or context.is_offline_mode():
    raise RuntimeError(
        "kredun's migrations run through ProvenanceStore.upgrade() (`kredun db upgrade`), "
        "not the alembic command line"
    )

context.configure(connection=connection)
with context.begin_transaction():
    context.run_migrations()
