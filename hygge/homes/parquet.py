"""Parquet-file home: a file, a folder or a glob of parquet files, streamed with pyarrow.dataset."""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds

from hygge.config.models import ParquetHomeConfig, ResolvedEntity
from hygge.errors import HyggeError, SourceError
from hygge.homes.base import Bound, SourceFile, pin_file_schema, read_dataset_columns, scan_dataset
from hygge.storage import Storage


class ParquetHome:
    def __init__(self, entity: ResolvedEntity, project_root: Path | None = None):
        assert isinstance(entity.home, ParquetHomeConfig)
        self.entity = entity
        self.config = entity.home
        try:
            self.base = Storage.at(self.config.path, project_root, self.config)
        except HyggeError as exc:
            raise exc.with_context(file=entity.file, flow=entity.flow, entity=entity.name) from None
        self.pattern = (entity.path or entity.name).strip("/")
        self._dataset: ds.Dataset | None = None

    def describe(self) -> str:
        return f"parquet {self.base.describe()}/{self.pattern}"

    def _files(self) -> list[str]:
        """Files under the base: a glob, a single file (with or without .parquet), or a folder."""
        if any(ch in self.pattern for ch in "*?["):
            prefix = re.split(r"[*?\[]", self.pattern, maxsplit=1)[0].rsplit("/", 1)[0]
            names = [o["path"] for o in self.base.list(prefix)]
            return sorted(n for n in names if fnmatch.fnmatchcase(n, self.pattern) and _visible(n))
        for candidate in (self.pattern, f"{self.pattern}.parquet"):
            if candidate.endswith(".parquet") and self.base.exists(candidate):
                return [candidate]
        names = [o["path"] for o in self.base.list(self.pattern)]
        return sorted(n for n in names if n.endswith(".parquet") and _visible(n[len(self.pattern) + 1 :]))

    def dataset(self) -> ds.Dataset:
        if self._dataset is None:
            files = self._files()
            if not files:
                raise SourceError(
                    f"no parquet files at {self.describe()}",
                    hint="check the home's `path` and the entity's `path`",
                    flow=self.entity.flow,
                    entity=self.entity.name,
                    field="path",
                )
            filesystem, paths = self.base.dataset_paths(files)
            try:
                self._dataset = ds.dataset(paths, format="parquet", filesystem=filesystem)
            except (pa.ArrowInvalid, OSError) as exc:
                raise SourceError(
                    f"cannot open parquet at {self.describe()}: {exc}",
                    flow=self.entity.flow,
                    entity=self.entity.name,
                ) from None
        return self._dataset

    def schema(self) -> pa.Schema:
        return pin_file_schema(self.dataset().schema, self.entity.columns)

    def copyable_files(self) -> list[SourceFile] | None:
        """The files, if each one's bytes already hold the pinned schema (same names, order and
        types, no `columns:` override): a store may then copy them instead of re-encoding."""
        if self.entity.columns:
            return None
        dataset = self.dataset()
        schema = self.schema()
        files = []
        for fragment in dataset.get_fragments():
            metadata = fragment.metadata
            held = metadata.schema.to_arrow_schema()
            # Names and types must match; a column the file declares required is fine (no nulls).
            if held.names != schema.names or any(
                not a.type.equals(b.type) for a, b in zip(held, schema, strict=True)
            ):
                return None
            files.append(SourceFile(dataset.filesystem, fragment.path, metadata))
        return files

    def read_columns(self, names: list[str]) -> pa.RecordBatchReader:
        """Only these columns of every row (a key set for reconciliation)."""
        return read_dataset_columns(self.dataset(), self.schema(), names, self.config.batch_size)

    def read(self, bound: Bound | None = None) -> pa.RecordBatchReader:
        return scan_dataset(self.dataset(), self.schema(), bound, self.config.batch_size, plain_files=True)


def _visible(relative: str) -> bool:
    """Parquet readers skip names starting with '_' or '.' (staging, markers): so does hygge."""
    return not any(part.startswith(("_", ".")) for part in relative.split("/"))
