"""Delta home: a Delta table (local or on ADLS/OneLake) streamed with its watermark filter pushed down."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from hygge.config.models import DeltaHomeConfig, ResolvedEntity
from hygge.errors import HyggeError, SourceError
from hygge.homes.base import Bound, pin_file_schema, read_dataset_columns, scan_dataset
from hygge.storage import Storage


class DeltaHome:
    def __init__(self, entity: ResolvedEntity, project_root: Path | None = None):
        assert isinstance(entity.home, DeltaHomeConfig)
        self.entity = entity
        self.config = entity.home
        try:
            base = Storage.at(self.config.path, project_root, self.config)
        except HyggeError as exc:
            raise exc.with_context(file=entity.file, flow=entity.flow, entity=entity.name) from None
        self.location = base.child(*(entity.path or entity.name).strip("/").split("/"))
        self._table = None

    def describe(self) -> str:
        return f"delta {self.location.describe()}"

    def table(self):
        if self._table is None:
            from deltalake import DeltaTable

            try:
                self._table = DeltaTable(self.location.uri, storage_options=self.location.options())
            except Exception as exc:
                raise SourceError(
                    f"no Delta table at {self.location.describe()}: {str(exc).splitlines()[0][:200]}",
                    hint="check the home's `path` and the entity's `path`",
                    flow=self.entity.flow,
                    entity=self.entity.name,
                    field="path",
                ) from None
        return self._table

    def schema(self) -> pa.Schema:
        return pin_file_schema(pa.schema(self.table().schema().to_arrow()), self.entity.columns)

    def read_columns(self, names: list[str]) -> pa.RecordBatchReader:
        """Only these columns of every row (a key set for reconciliation)."""
        return read_dataset_columns(
            self.table().to_pyarrow_dataset(), self.schema(), names, self.config.batch_size
        )

    def read(self, bound: Bound | None = None) -> pa.RecordBatchReader:
        return scan_dataset(self.table().to_pyarrow_dataset(), self.schema(), bound, self.config.batch_size)
