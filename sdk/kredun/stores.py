"""The stores of one configuration: provenance (calls, jobs, small values) and values.

A scheduler owns one and hands it to its value domain and executors; code that only reads
results (`ExecutionHandle.result()`, the worker) opens one without building a scheduler.
Both stores open on first use, so a `Stores` that is never read connects to nothing.
"""

from __future__ import annotations

from types import TracebackType

from .bounds import check_size
from .config import Config
from .provenance.base import ProvenanceBackend
from .provenance.memory import open_provenance_store
from .valuestore import ValueStore, open_value_store


class Stores:
    def __init__(self, config: Config, provenance: ProvenanceBackend | None = None) -> None:
        """`provenance`: a store to use instead of the configured database."""
        self.config = config
        self._given = provenance
        self._provenance: ProvenanceBackend | None = None
        self._values: ValueStore | None = None

    @property
    def provenance(self) -> ProvenanceBackend:
        """The provenance store, its schema created or upgraded when first opened."""
        if self._provenance is None:
            store = self._given
            if store is None:
                store = open_provenance_store(
                    self.config.require_database_uri(),
                    self.config.cache_scope,
                    self.config.database_pool_size,
                )
            store.ensure_schema()
            self._provenance = store
        return self._provenance

    @property
    def values(self) -> ValueStore:
        if self._values is None:
            self._values = open_value_store(
                self.config.require_value_store_uri(), self.config.cache_scope
            )
        return self._values

    def fetch_blob(self, value_hash: str, max_bytes: int | None = None) -> bytes:
        """A serialized value: inline in the provenance store when small, else from the value
        store; LimitExceededError rather than more than `max_bytes`, ValueNotFoundError."""
        data = self.provenance.value_data([value_hash]).get(value_hash)
        if data is None:
            return self.values.get(value_hash, max_bytes=max_bytes)
        check_size(value_hash, len(data), max_bytes, self.provenance.display_uri)
        return data

    def close(self) -> None:
        """Release the provenance store's connections; the stores reopen on next use."""
        if self._provenance is not None:
            self._provenance.close()
            self._provenance = None

    def __enter__(self) -> Stores:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
