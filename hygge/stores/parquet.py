"""Parquet store: a folder of parquet files per entity, changed only through staged commits.

The entity's folder holds its data files and nothing else, so any reader of the folder (polars,
DuckDB globs, pyarrow) sees exactly the table. hygge's bookkeeping sits beside it, in the store's
`_hygge/<entity>/`: a write streams into `staging/<run>/`, then writes a commit record in `commits/`
listing the files to add and remove, then applies it with renames and deletes. A crash after the
record is written is rolled forward by the next run's `recover()`; a crash before it leaves only
staging files, removed then. File names carry the run id, so no run or retry ever overwrites
another's file. Stores written before this layout (`_hygge_staging/`, `_hygge_commits/` inside the
entity folder) are moved to it by their next run's recovery.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Iterator
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from hygge.config.models import FileLayoutSettings
from hygge.errors import StoreError
from hygge.faults import fault
from hygge.storage import NotFoundError, Storage
from hygge.storage.scan import rows_where
from hygge.stores.base import Commit, WriteRequest, check_columns_unchanged, live_only
from hygge.stores.files import layout_of, write_files
from hygge.stores.rewrite import Rewrite, changed_files, gathering_keys

WORK = "_hygge"  # in the store's folder, beside the entities (as Open Mirroring's bookkeeping)
LEGACY_STAGING = "_hygge_staging"  # inside the entity folder, before hygge kept it clean
LEGACY_COMMITS = "_hygge_commits"
KEEP_COMMIT_RECORDS = 10


def _stamp() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%f")


def _data_files(paths: Iterable[str]) -> list[str]:
    """The table's files among an entity folder's paths: top-level *.parquet not starting with `_`."""
    return sorted(p for p in paths if p.endswith(".parquet") and "/" not in p and not p.startswith("_"))


class ParquetStore:
    """The entity `name` of the store folder `root`: data in `root/name/`, bookkeeping in
    `root/_hygge/name/`. Commit records name paths relative to `root`, so one rename moves a staged
    file into the table."""

    def __init__(self, root: Storage, name: str, config: FileLayoutSettings):
        self.root = root
        self.name = name
        self.location = root.child(name)
        self.config = config
        self.staging = f"{WORK}/{name}/staging"
        self.commits = f"{WORK}/{name}/commits"

    @property
    def accepts_copies(self) -> bool:
        """A full load may land a home's parquet files byte for byte, unless a layout is configured."""
        return not layout_of(self.config).chosen

    def describe(self) -> str:
        return f"parquet {self.location.describe()}"

    # --- reading what landed -------------------------------------------------------------------
    def data_files(self) -> list[str]:
        return _data_files(o["path"] for o in self.location.list())

    def _dataset(self) -> ds.Dataset | None:
        files = self.data_files()
        if not files:
            return None
        filesystem, paths = self.location.dataset_paths(files)
        return ds.dataset(paths, format="parquet", filesystem=filesystem)

    def scan(self) -> pa.Table:
        dataset = self._dataset()
        return dataset.to_table() if dataset is not None else pa.table({})

    def check_schema(self, schema: pa.Schema, run_type: str) -> tuple[str, str | None]:
        """Incremental runs must find the landed columns unchanged (see check_columns_unchanged); the
        run type stays, with no note."""
        files = self.data_files() if run_type == "incremental" else []
        landed = None
        if files:
            filesystem, [path] = self.location.dataset_paths(files[-1:])
            landed = pq.read_schema(path, filesystem=filesystem)
        check_columns_unchanged(landed, schema, run_type, self.describe())
        return run_type, None

    def max_value(self, column: str) -> Any:
        dataset = self._dataset()
        if dataset is None:
            return None
        values = dataset.to_table(columns=[column]).column(0)
        return pc.max(values).as_py() if len(values) else None

    def rows_between(self, column: str, low: Any, high: Any) -> pa.Table:
        dataset = self._dataset()
        if dataset is None:
            return pa.table({})
        field = pc.field(column)
        return rows_where(dataset, column, (field >= low) & (field <= high))

    def row_count(self) -> int:
        """Rows in the landed files, from their footers (no data read)."""
        filesystem, paths = self.location.dataset_paths(self.data_files())
        return sum(pq.read_metadata(p, filesystem=filesystem).num_rows for p in paths)

    def landed_keys(self, keys: list[str], soft_column: str | None) -> Iterator[pa.RecordBatch]:
        filesystem, paths = self.location.dataset_paths(self.data_files())
        for path in paths:
            with filesystem.open_input_file(path) as handle:
                file = pq.ParquetFile(handle, pre_buffer=False, buffer_size=1024 * 1024)
                extra = [soft_column] if soft_column and soft_column in file.schema_arrow.names else []
                for batch in file.iter_batches(batch_size=262_144, columns=keys + extra):
                    yield live_only(batch, keys, soft_column)

    # --- commits -------------------------------------------------------------------------------
    def _commit_records(self) -> list[tuple[str, dict[str, Any]]]:
        records = []
        for obj in sorted(self.root.list(self.commits), key=lambda o: o["path"]):
            if obj["path"].endswith(".json"):
                records.append((obj["path"], json.loads(self.root.get(obj["path"]))))
        return records

    def _move_legacy_records(self, paths: list[str]) -> None:
        """Commit records of the older layout (inside the entity folder, paths relative to it) become
        records of this one, their paths made relative to the store folder; their staged files stay
        where they are until applied. Put before delete: a crash between repeats the same move."""
        for path in sorted(paths):
            record = json.loads(self.location.get(path))
            record["adds"] = [[f"{self.name}/{s}", f"{self.name}/{f}"] for s, f in record["adds"]]
            record["removes"] = [f"{self.name}/{r}" for r in record["removes"]]
            self.root.put(f"{self.commits}/{path.rsplit('/', 1)[1]}", json.dumps(record).encode())
            self.location.delete(path)

    def recover(self) -> Commit | None:
        # One listing of the entity folder: its data files and any bookkeeping of the older layout.
        listed = [o["path"] for o in self.location.list()]
        self._move_legacy_records([p for p in listed if p.startswith(f"{LEGACY_COMMITS}/") and p.endswith(".json")])
        records = self._commit_records()
        applied = False
        for path, record in records:
            if record["state"] != "applied":
                fault("parquet.recover")
                self._apply(path, record)
                applied = True
        # Every commit record is applied now, so what is left in staging was never committed.
        # Whole folders, so that no empty run folder is left behind on local disk either (older
        # versions left empty ones there, which a listing does not show).
        self.root.delete_folder(self.staging)
        for legacy in (LEGACY_STAGING, LEGACY_COMMITS):
            if self.location.is_local or any(p.startswith(f"{legacy}/") for p in listed):
                self.location.delete_folder(legacy)
        if not records:
            return None
        last = records[-1][1]
        # The records outlive the entity folder: a folder deleted or emptied by hand must not pass
        # for the last commit (drift checks then refuse or reload instead of landing only new rows).
        present = set(self.data_files() if applied else _data_files(listed))
        missing = [f for _, f in last["adds"] if f.rsplit("/", 1)[1] not in present]
        if missing and not present:
            return None
        return Commit(
            last["entity_run_id"],
            last["run_type"],
            last.get("rows"),
            records[-1][0],
            last.get("owner"),
            last.get("position"),
            foreign=f"{len(missing)} file(s) its last commit added are gone" if missing else None,
        )

    def _prune_records(self) -> None:
        """Only the last record is needed (to match it against the journal); a few are kept for
        inspection. Pruned by a commit only, so a run that writes nothing changes nothing."""
        paths = sorted(o["path"] for o in self.root.list(self.commits) if o["path"].endswith(".json"))
        for path in paths[:-KEEP_COMMIT_RECORDS]:
            self.root.delete(path)

    def _apply(self, record_path: str, record: dict[str, Any]) -> None:
        for staged, final in record["adds"]:
            try:
                self.root.rename(staged, final, overwrite=True)
                fault("parquet.renamed")
            except (NotFoundError, FileNotFoundError):
                if not self.root.exists(final):
                    raise StoreError(
                        f"commit {record_path} of {self.describe()} lost its staged file {staged}",
                        hint="run with --full-drop to rebuild this entity",
                    ) from None
        for gone in record["removes"]:
            self.root.delete(gone)
        fault("parquet.applied")
        record["state"] = "applied"
        self.root.put(record_path, json.dumps(record).encode())

    def write(self, reader: pa.RecordBatchReader, request: WriteRequest) -> Commit:
        run = request.entity_run_id
        stamp = _stamp()
        keys: list[pa.Table] = []
        # Keys are gathered only when landed files may hold them: a first load has nothing to replace,
        # and gathering a whole table's keys cost 600 MB for 10M rows (measured).
        # Listed once (the entity's lease keeps other writers out meanwhile), relative to the store folder.
        landed = [f"{self.name}/{f}" for f in self.data_files()]
        upsert = bool(request.primary_key) and request.run_type == "incremental" and bool(landed)

        written = write_files(
            gathering_keys(reader, request.primary_key, keys) if upsert else reader,
            reader.schema,
            self.root,
            lambda n: f"{self.staging}/{run}/part-{stamp}-{run}-{n:05d}.parquet",
            layout_of(self.config),
            request.copies,
        )
        staged = [(f.path, self._final(f.path)) for f in written]
        rows = sum(f.rows for f in written)

        removes: list[str] = []
        adds = list(staged)
        deletes = request.deletes if request.delete_count and request.run_type == "incremental" else None
        if request.run_type == "full_drop":
            removes = landed
        elif keys or (deletes is not None and landed):
            replaced = pa.concat_tables(keys) if keys else None
            prefix = f"{self.staging}/{run}/part-{stamp}-{run}"
            rewrite = self._changed_files(landed, replaced, request, prefix)
            adds += [(f.path, self._final(f.path)) for f in rewrite.written]
            removes = rewrite.removed
        fault("parquet.staged")
        record = {
            "entity_run_id": run,
            "run_type": request.run_type,
            "rows": rows,
            "state": "pending",
            "adds": [[s, f] for s, f in adds],
            "removes": removes,
            "owner": request.owner,
            "position": request.position,
        }
        record_path = f"{self.commits}/{stamp}-{run}.json"
        self.root.put(record_path, json.dumps(record).encode(), create_only=True)
        fault("parquet.record_written")
        self._apply(record_path, record)
        self.root.delete_folder(f"{self.staging}/{run}")  # emptied by the renames (a folder on disk and ADLS)
        self._prune_records()
        return Commit(run, request.run_type, rows, record_path, request.owner, request.position)

    def _final(self, staged: str) -> str:
        """Where a staged file lands: the entity folder, under the same file name."""
        return f"{self.name}/{staged.rsplit('/', 1)[1]}"

    def _changed_files(
        self, landed: list[str], replaced: pa.Table | None, request: WriteRequest, prefix: str
    ) -> Rewrite:
        """The landed files holding a replaced or deleted key, rewritten into staging (hygge.stores.rewrite)."""
        return changed_files(
            self.root,
            landed,
            replaced,
            request,
            lambda index, n: f"{prefix}-r{index:05d}-{n:03d}.parquet",
            layout_of(self.config),
        )
