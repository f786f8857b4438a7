"""Delta store: full_drop overwrites, incremental appends or merges on the primary key.

Each commit carries the entity run id in its commit info and a transaction (app id, version), so a
rerun can tell whether an interrupted run already committed, and a repeated commit is a no-op.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
import time
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from hygge.errors import HyggeError
from hygge.faults import fault
from hygge.storage import NotFoundError, Storage, storage_error
from hygge.storage.scan import rows_where
from hygge.stores.base import Commit, WriteRequest, check_columns_unchanged, live_only
from hygge.stores.delta_commit import LiveFile, checkpoint_due, commit, live_files, own_commit_refusal
from hygge.stores.delta_stats import file_stats, listed, new_table_configuration
from hygge.stores.files import FileLayout, WrittenFile, write_files
from hygge.stores.rewrite import changed_files, gathering_keys

RUN_ID_KEY = "hygge.entity_run_id"
RUN_TYPE_KEY = "hygge.run_type"
OWNER_KEY = "hygge.owner"
POSITION_KEY = "hygge.position"
# Operations that keep a table's rows as they are: another writer may run them between hygge's runs.
_MAINTENANCE = {
    "OPTIMIZE",
    "VACUUM START",
    "VACUUM END",
    "SET TBLPROPERTIES",
    "ADD CONSTRAINT",
    "DROP CONSTRAINT",
}
OP = "__hygge_op"  # in a MERGE's source only: 0 upsert, 2 delete
# The data files this store writes: part-<UTC stamp>-<entity run id>-d-<n>.parquet. Other writers name
# theirs differently, and the `d` tells them from the parquet store's (part-<stamp>-<run>-<n>): the
# orphan sweep never deletes a file this store did not write, even in a folder another store shares.
# Files named before the marker (older hygge) are never swept.
HYGGE_FILE = re.compile(r"part-\d{8}T\d{12}-[0-9a-f]{32}-d-[0-9a-z-]+\.parquet")
LOG_ENTRY = re.compile(r"_delta_log/\d{20}\.json")
UPSERT, DELETE = 0, 2


def _quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


class DeltaStore:
    def __init__(self, location: Storage, app_id: str, layout: FileLayout | None = None):
        self.location = location
        self.app_id = app_id
        self.layout = layout or FileLayout()
        self._opened: tuple[Any | None] | None = None  # the table as last opened (None inside: absent)

    @property
    def accepts_copies(self) -> bool:
        """A full load may land a home's parquet files byte for byte, unless a layout is configured."""
        return not self.layout.chosen

    def describe(self) -> str:
        return f"delta {self.location.describe()}"

    def _table(self) -> Any | None:
        """The table, opened once per store object until a write commits: an entity run reads its
        schema, last commit, boundary rows and keys from one snapshot (each open replays the log)."""
        if self._opened is None:
            self._opened = (self._open(),)
        return self._opened[0]

    def _open(self) -> Any | None:
        from deltalake import DeltaTable

        try:
            if not DeltaTable.is_deltatable(self.location.uri, storage_options=self.location.options()):
                return None
            return DeltaTable(self.location.uri, storage_options=self.location.options())
        except OSError as exc:  # object_store failures (refused credential, missing container, ...)
            raise storage_error(self.location, "opening", exc) from None

    def check_schema(self, schema: pa.Schema, run_type: str) -> tuple[str, str | None]:
        """Incremental runs must find the landed columns unchanged (see check_columns_unchanged); the
        run type stays, with no note."""
        table = self._table() if run_type == "incremental" else None
        landed = table.to_pyarrow_dataset().schema if table is not None else None
        check_columns_unchanged(landed, schema, run_type, self.describe())
        return run_type, None

    def remove_orphans(self) -> list[str]:
        """Delete the data files an interrupted hygge write left: named as hygge names them, not in the
        table, and written after the newest log entry (no commit, past or future, can name them: a
        file a commit removed was written before that commit). Called under the entity's lease, after
        the ownership check, so no other writer of these files is running. Returns what it deleted."""
        objects = self.location.list()
        logged = [o["last_modified"] for o in objects if LOG_ENTRY.fullmatch(o["path"])]
        newest = max(logged, default=None)
        table = self._table()
        actions = pa.table(table.get_add_actions(flatten=True)) if table is not None else None
        live = set(actions.column("path").to_pylist()) if actions is not None else set()
        orphans = [
            o["path"]
            for o in objects
            if HYGGE_FILE.fullmatch(o["path"])
            and o["path"] not in live
            and (newest is None or o["last_modified"] > newest)
        ]
        for path in orphans:
            with contextlib.suppress(NotFoundError):  # gone meanwhile: nothing left to delete
                self.location.delete(path)
        return orphans

    def recover(self) -> Commit | None:
        table = self._table()
        if table is None:
            return None
        foreign = None
        for entry in table.history(limit=20):
            run_id = entry.get(RUN_ID_KEY)
            if run_id:
                metrics = entry.get("operationMetrics") or {}
                rows = metrics.get("num_added_rows", metrics.get("num_source_rows"))
                return Commit(
                    run_id,
                    entry.get(RUN_TYPE_KEY, ""),
                    rows,
                    f"version {entry.get('version')}",
                    entry.get(OWNER_KEY),
                    entry.get(POSITION_KEY),
                    foreign,
                )
            operation = str(entry.get("operation", ""))
            if foreign is None and operation not in _MAINTENANCE:
                foreign = f"version {entry.get('version')} ({operation}) was written by another writer"
        return None

    def write(self, reader: pa.RecordBatchReader, request: WriteRequest) -> Commit:
        from deltalake import CommitProperties, Transaction

        self._opened = None  # a write starts from the table as it is now
        table = self._table()
        if table is not None and (table.transaction_version(self.app_id) or -1) >= request.version:
            # This exact attempt already committed (a retried commit): nothing to do.
            return self.recover() or Commit(request.entity_run_id, request.run_type)
        metadata = {RUN_ID_KEY: request.entity_run_id, RUN_TYPE_KEY: request.run_type}
        metadata.update(
            {k: v for k, v in ((OWNER_KEY, request.owner), (POSITION_KEY, request.position)) if v}
        )
        props = CommitProperties(
            custom_metadata=metadata,
            app_transactions=[Transaction(self.app_id, request.version)],
        )
        try:
            if request.run_type == "incremental" and request.primary_key and table is not None:
                files = live_files(table) if own_commit_refusal(table) is None else None
                if files is not None:
                    self._rewrite(table, files, reader, request, metadata)
                else:
                    self._merge(table, reader, request, props)
            else:
                mode = "overwrite" if request.run_type == "full_drop" else "append"
                self._commit_files(table, reader, request, props, mode)
        except HyggeError:
            raise
        except Exception as exc:
            # deltalake's own errors (its reads of landed files too): classified as every storage
            # failure is, so an outage is retried and a refused credential is not.
            raise storage_error(self.location, "writing", exc) from exc
        finally:
            self._opened = None  # committed or not, the table may have moved on
        fault("delta.committed")
        commit = self.recover()
        if commit is None or commit.entity_run_id != request.entity_run_id:
            # A MERGE with nothing to change commits nothing: say so, never name an older commit.
            return Commit(request.entity_run_id, request.run_type, 0, "nothing new")
        return commit

    def _commit_files(
        self, table: Any, reader: pa.RecordBatchReader, request: WriteRequest, props: Any, mode: str
    ) -> None:
        """Stream into parquet files beside the log (invisible until committed), then commit them."""
        from deltalake import Schema
        from deltalake.transaction import AddAction, create_table_with_add_actions

        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%f")
        run = request.entity_run_id
        written = write_files(
            reader,
            reader.schema,
            self.location,
            lambda n: f"part-{stamp}-{run}-d-{n:05d}.parquet",
            self.layout,
            request.copies,
        )
        fault("delta.staged")
        now_ms = int(time.time() * 1000)
        if table is None:
            configuration = new_table_configuration(reader.schema)
        else:
            configuration = table.metadata().configuration
        bounded = listed(configuration)
        adds = [AddAction(f.path, f.size, {}, now_ms, True, file_stats(f, bounded)) for f in written]
        try:
            if table is None:
                create_table_with_add_actions(
                    self.location.uri,
                    Schema.from_arrow(reader.schema),
                    adds,
                    mode="overwrite",
                    configuration=configuration,
                    storage_options=self.location.options(),
                    commit_properties=props,
                )
            else:
                table.create_write_transaction(adds, mode=mode, schema=reader.schema, commit_properties=props)
        except BaseException:
            for f in written:
                with contextlib.suppress(Exception):  # best effort: the commit error is what counts
                    self.location.delete(f.path)
            raise

    def _rewrite(
        self,
        table: Any,
        files: list[LiveFile],
        reader: pa.RecordBatchReader,
        request: WriteRequest,
        metadata: dict[str, str],
    ) -> None:
        """A keyed change as the parquet store makes it: the new rows staged as files beside the log, the
        files holding a replaced or deleted key rewritten, then one commit (hygge.stores.delta_commit)
        removing those and adding the rest. Memory is one batch and one row group, not a MERGE's join."""
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%f")
        run = request.entity_run_id
        keys: list[pa.Table] = []
        written: list[WrittenFile] = []
        try:
            name = f"part-{stamp}-{run}-d"
            new = write_files(
                gathering_keys(reader, request.primary_key, keys),
                reader.schema,
                self.location,
                lambda n: f"{name}-{n:05d}.parquet",
                self.layout,
            )
            written += new
            replaced = pa.concat_tables(keys) if keys else None
            paths = [f.path for f in files]
            rewrite = changed_files(
                self.location,
                paths,
                replaced,
                request,
                lambda i, n: f"{name}-r{i:05d}-{n:03d}.parquet",
                self.layout,
            )
            written += rewrite.written
            fault("delta.staged")
            if not written and not rewrite.removed:
                return
            removed = set(rewrite.removed)
            bounded = listed(table.metadata().configuration)
            info = {
                "operation": "MERGE",
                "operationParameters": {
                    "predicate": json.dumps(request.primary_key),
                    "by": "hygge file rewrite",
                },
                "operationMetrics": {
                    "num_source_rows": sum(f.rows for f in new),
                    "num_target_rows_deleted": request.delete_count,
                    "num_target_files_removed": len(removed),
                    "num_target_files_added": len(written),
                },
                **metadata,
            }
            version = commit(
                self.location,
                table,
                [f for f in files if f.path in removed],
                [(f, file_stats(f, bounded)) for f in written],
                (self.app_id, request.version),
                info,
            )
        except BaseException:
            for f in written:
                with contextlib.suppress(Exception):  # best effort: the commit error is what counts
                    self.location.delete(f.path)
            raise
        if checkpoint_due(table, version):
            self._opened = None  # the checkpoint is of the version just committed
            with contextlib.suppress(Exception):  # a checkpoint only speeds up reading the log
                self._table().create_checkpoint()  # type: ignore[union-attr]

    def _merge(self, table: Any, reader: pa.RecordBatchReader, request: WriteRequest, props: Any) -> None:
        """One MERGE for the run's changes: upserted rows and deleted keys arrive in one source, told
        apart by an operation column, so both land in a single commit."""
        keys = request.primary_key
        predicate = " AND ".join(f"t.{_quote(k)} = s.{_quote(k)}" for k in keys)
        deletes = request.deletes if request.delete_count else None
        source = _with_operations(reader, deletes, request.soft_column, request.deleted_at)
        merger = table.merge(
            source=source,
            predicate=predicate,
            source_alias="s",
            target_alias="t",
            commit_properties=props,
            streamed_exec=True,
        )
        if deletes is not None:
            gone = f"s.{_quote(OP)} = {DELETE}"
            if request.soft_column:
                column = _quote(request.soft_column)
                merger = merger.when_matched_update(
                    updates={column: f"s.{column}"}, predicate=f"{gone} AND t.{column} IS NULL"
                )
            else:
                merger = merger.when_matched_delete(predicate=gone)
        live = f"s.{_quote(OP)} = {UPSERT}"
        (
            merger.when_matched_update_all(predicate=live, except_cols=[OP])
            .when_not_matched_insert_all(predicate=live, except_cols=[OP])
            .execute()
        )

    def row_count(self) -> int:
        """Rows in the table's files, from the log's statistics (no data read)."""
        table = self._table()
        if table is None:
            return 0
        actions = pa.table(table.get_add_actions(flatten=True))
        counts = actions.column("num_records") if "num_records" in actions.column_names else None
        if counts is None or counts.null_count:
            return table.to_pyarrow_dataset().count_rows()
        return int(pc.sum(counts).as_py() or 0)

    def landed_keys(self, keys: list[str], soft_column: str | None) -> Iterator[pa.RecordBatch]:
        table = self._table()
        if table is None:
            return
        dataset = table.to_pyarrow_dataset()
        extra = [soft_column] if soft_column and soft_column in dataset.schema.names else []
        for batch in dataset.to_batches(columns=keys + extra, batch_size=262_144, fragment_readahead=1):
            yield live_only(batch, keys, soft_column)

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
        window = (field >= low) & (field <= high)
        if table.metadata().partition_columns:  # partition values live in the log, not the files
            return table.to_pyarrow_dataset().to_table(filter=window)
        return rows_where(table.to_pyarrow_dataset(), column, window)

    def scan(self) -> pa.Table:
        table = self._table()
        return table.to_pyarrow_table() if table is not None else pa.table({})


def _with_operations(
    reader: pa.RecordBatchReader, deletes: pa.Table | None, soft: str | None, when: dt.datetime | None
) -> pa.RecordBatchReader:
    """The MERGE source: each upserted row with operation 0, then each deleted key (other columns
    NULL; a soft delete's deleted-at column holds the time) with operation 2."""
    schema = reader.schema.append(pa.field(OP, pa.int8()))

    def batches() -> Iterator[pa.RecordBatch]:
        for batch in reader:
            if batch.num_rows:
                yield batch.append_column(schema.field(OP), pa.array([UPSERT] * batch.num_rows, pa.int8()))
        if deletes is None or not deletes.num_rows:
            return
        count = deletes.num_rows
        columns = []
        for field in reader.schema:
            if field.name in deletes.column_names:
                columns.append(deletes.column(field.name).cast(field.type))
            elif field.name == soft:
                columns.append(pa.array([when or dt.datetime.now(dt.UTC)] * count, field.type))
            else:
                columns.append(pa.nulls(count, field.type))
        columns.append(pa.array([DELETE] * count, pa.int8()))
        yield from pa.Table.from_arrays(columns, schema=schema).combine_chunks().to_batches()

    return pa.RecordBatchReader.from_batches(schema, batches())
