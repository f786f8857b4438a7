"""Delta store: full_drop overwrites, incremental appends or merges on the primary key.

Each commit carries the entity run id in its commit info and a transaction (app id, version), so a
rerun can tell whether an interrupted run already committed, and a repeated commit is a no-op.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from hygge.errors import StoreError
from hygge.storage import Storage
from hygge.stores.base import Commit, WriteRequest

RUN_ID_KEY = "hygge.entity_run_id"
RUN_TYPE_KEY = "hygge.run_type"


def _quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


class DeltaStore:
    def __init__(self, location: Storage, app_id: str):
        self.location = location
        self.app_id = app_id

    def describe(self) -> str:
        return f"delta {self.location.uri}"

    def _table(self) -> Any | None:
        from deltalake import DeltaTable

        if not DeltaTable.is_deltatable(self.location.uri, storage_options=self.location.options or None):
            return None
        return DeltaTable(self.location.uri, storage_options=self.location.options or None)

    def recover(self) -> Commit | None:
        table = self._table()
        if table is None:
            return None
        for entry in table.history(limit=20):
            run_id = entry.get(RUN_ID_KEY)
            if run_id:
                metrics = entry.get("operationMetrics") or {}
                rows = metrics.get("num_added_rows", metrics.get("num_source_rows"))
                return Commit(run_id, entry.get(RUN_TYPE_KEY, ""), rows, f"version {entry.get('version')}")
        return None

    def write(self, reader: pa.RecordBatchReader, request: WriteRequest) -> Commit:
        from deltalake import CommitProperties, Transaction, write_deltalake

        table = self._table()
        if table is not None and (table.transaction_version(self.app_id) or -1) >= request.version:
            # This exact attempt already committed (a retried commit): nothing to do.
            return self.recover() or Commit(request.entity_run_id, request.run_type)
        props = CommitProperties(
            custom_metadata={RUN_ID_KEY: request.entity_run_id, RUN_TYPE_KEY: request.run_type},
            app_transactions=[Transaction(self.app_id, request.version)],
        )
        options = self.location.options or None
        try:
            if request.run_type == "full_drop":
                write_deltalake(
                    self.location.uri,
                    reader,
                    mode="overwrite",
                    schema_mode="overwrite",
                    commit_properties=props,
                    storage_options=options,
                )
            elif table is None or not request.primary_key:
                write_deltalake(
                    self.location.uri,
                    reader,
                    mode="append",
                    schema_mode="merge",
                    commit_properties=props,
                    storage_options=options,
                )
            else:
                predicate = " AND ".join(f"t.{_quote(k)} = s.{_quote(k)}" for k in request.primary_key)
                (
                    table.merge(
                        source=reader,
                        predicate=predicate,
                        source_alias="s",
                        target_alias="t",
                        commit_properties=props,
                        streamed_exec=True,
                    )
                    .when_matched_update_all()
                    .when_not_matched_insert_all()
                    .execute()
                )
        except Exception as exc:
            from hygge.errors import HyggeError

            if isinstance(exc, HyggeError):
                raise
            cause = exc.__cause__ or exc.__context__
            if isinstance(cause, HyggeError):
                raise cause from None
            raise StoreError(f"writing {self.describe()} failed: {exc}") from exc
        return self.recover() or Commit(request.entity_run_id, request.run_type)

    def max_value(self, column: str) -> Any:
        table = self._table()
        if table is None:
            return None
        data = table.to_pyarrow_dataset().to_table(columns=[column])
        return pc.max(data.column(0)).as_py() if data.num_rows else None

    def rows_between(self, column: str, low: Any, high: Any) -> pa.Table:
        table = self._table()
        if table is None:
            return pa.table({})
        field = pc.field(column)
        return table.to_pyarrow_dataset().to_table(filter=(field >= low) & (field <= high))

    def scan(self) -> pa.Table:
        table = self._table()
        return table.to_pyarrow_table() if table is not None else pa.table({})
