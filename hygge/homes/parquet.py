"""Parquet-file home: a file, a folder or a glob of parquet files, streamed with pyarrow.dataset."""

from __future__ import annotations

import datetime as dt
import glob
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from hygge.config.models import ParquetHomeConfig, ResolvedEntity
from hygge.errors import SourceError
from hygge.homes.base import Bound
from hygge.typemap import cast_batch, parse_arrow_type


class ParquetHome:
    def __init__(self, entity: ResolvedEntity, project_root: Path | None = None):
        assert isinstance(entity.home, ParquetHomeConfig)
        self.entity = entity
        self.config = entity.home
        base = Path(self.config.path)
        if not base.is_absolute() and project_root is not None:
            base = project_root / base
        self.location = base / (entity.path or entity.name)
        self._dataset: ds.Dataset | None = None

    def describe(self) -> str:
        return f"parquet {self.location}"

    def _files(self) -> list[str]:
        text = str(self.location)
        if any(ch in text for ch in "*?["):
            return sorted(glob.glob(text, recursive=True))
        for candidate in (self.location, self.location.with_suffix(".parquet")):
            if candidate.is_file():
                return [str(candidate)]
            if candidate.is_dir():
                return sorted(
                    str(p)
                    for p in candidate.rglob("*.parquet")
                    if not any(part.startswith(("_", ".")) for part in p.relative_to(candidate).parts)
                )
        return []

    def dataset(self) -> ds.Dataset:
        if self._dataset is None:
            files = self._files()
            if not files:
                raise SourceError(
                    f"no parquet files at {self.location}",
                    hint="check the home's `path` and the entity's `path`",
                    flow=self.entity.flow,
                    entity=self.entity.name,
                    field="path",
                )
            try:
                self._dataset = ds.dataset(files, format="parquet")
            except (pa.ArrowInvalid, OSError) as exc:
                raise SourceError(
                    f"cannot open parquet at {self.location}: {exc}",
                    flow=self.entity.flow,
                    entity=self.entity.name,
                ) from None
        return self._dataset

    def schema(self) -> pa.Schema:
        fields = []
        for fld in self.dataset().schema:
            arrow = fld.type
            if pa.types.is_large_string(arrow):
                arrow = pa.string()
            elif pa.types.is_large_binary(arrow):
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
            if isinstance(value, dt.datetime) and value.tzinfo is None and bound.kind == "datetime":
                value = pa.scalar(value, type=pa.timestamp("us"))
            predicate = pc.field(bound.column) >= value
        scanner = self.dataset().scanner(filter=predicate, batch_size=self.config.batch_size)
        batches = (cast_batch(b, schema) for b in scanner.to_batches() if b.num_rows)
        return pa.RecordBatchReader.from_batches(schema, batches)
