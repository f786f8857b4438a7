"""Delta home: a Delta table (local or on ADLS/OneLake) streamed with its watermark filter pushed down."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from hygge.config.models import DeltaHomeConfig, ResolvedEntity
from hygge.errors import HyggeError, SourceError
from hygge.homes.base import Bound
from hygge.storage import Storage
from hygge.typemap import cast_batch, parse_arrow_type


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
        fields = []
        for fld in pa.schema(self.table().schema().to_arrow()):
            arrow = fld.type
            if pa.types.is_large_string(arrow) or pa.types.is_string_view(arrow):
                arrow = pa.string()
            elif pa.types.is_large_binary(arrow) or pa.types.is_binary_view(arrow):
                arrow = pa.binary()
            override = self.entity.columns.get(fld.name)
            if override:
                arrow = parse_arrow_type(override)
            fields.append(pa.field(fld.name, arrow))
        return pa.schema(fields)

    def read(self, bound: Bound | None = None) -> pa.RecordBatchReader:
        schema = self.schema()
        predicate = None
        if bound is not None:
            value = bound.value
            if isinstance(value, dt.datetime) and bound.kind == "datetime":
                value = pa.scalar(value, type=pa.timestamp("us"))
            predicate = pc.field(bound.column) >= value
        dataset = self.table().to_pyarrow_dataset()
        scanner = dataset.scanner(filter=predicate, batch_size=self.config.batch_size)
        batches = (cast_batch(b, schema) for b in scanner.to_batches() if b.num_rows)
        return pa.RecordBatchReader.from_batches(schema, batches)
