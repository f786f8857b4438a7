"""Fabric Open Mirroring store: a table folder under the LandingZone, fed sequentially numbered files.

Contract (met exactly): `_metadata.json` ({"keyColumns": [...]}) exists before any data file and is
never changed; `_partnerEvents.json` sits at the LandingZone root; data files are named
`00000000000000000001.parquet` … (20 digits, continuous, increasing; the service deletes processed
files but keeps the last one); `__rowMarker__` is the last column (0 insert, 2 delete, 4 upsert)
of files that change keyed rows, absent from insert-only files; no empty file.

hygge's own bookkeeping lives beside the tables in `_hygge/<table>/` (names starting with `_` are not
data): staged files, commit records and the rows at the watermark boundary. A write stages its files,
then writes a commit record (the commit point), then publishes: each staged file takes the next
sequence number with a put-if-absent rename, so racing writers never share a name or leave a gap.
A full_drop stages everything first, and only then deletes the table folder, waits for the service
to notice, writes `_metadata.json` and publishes from number 1; a crash anywhere after the commit
record is rolled forward by the next run without extracting again.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import re
import time
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

import hygge.stores.key_log as key_log
from hygge.config.models import OpenMirroringStoreConfig
from hygge.errors import ConfigError, StoreError
from hygge.fabric.schema import conform_for_fabric, conform_schema
from hygge.fabric.status import mirrored_item
from hygge.faults import fault
from hygge.slots import waiting
from hygge.storage import AlreadyExistsError, NotFoundError, Storage
from hygge.stores.base import Commit, WriteRequest
from hygge.stores.boundary import Boundary
from hygge.stores.files import layout_of, write_files
from hygge.stores.om_confirm import MirrorWatch
from hygge.stores.om_contract import TableContract
from hygge.stores.replay import replay_open_mirroring
from hygge.typemap import all_nullable

ROW_MARKER = "__rowMarker__"
WORK = "_hygge"  # beside the tables; a name starting with '_' is not a table to the service
INSERT, DELETE, UPSERT = 0, 2, 4
_DATA_FILE = re.compile(r"^(\d{20})\.parquet$")


def _stamp() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%f")


class OpenMirroringStore(TableContract):
    def __init__(
        self, landing_zone: Storage, table: str, config: OpenMirroringStoreConfig, key_columns: list[str]
    ) -> None:
        self.zone = landing_zone
        self.config = config
        self.folder = f"{config.db_schema}.schema/{table}" if config.db_schema else table
        self.table = landing_zone.child(*self.folder.split("/"))
        self.work_prefix = f"{WORK}/{self.folder.replace('/', '__')}"
        self.work = landing_zone.child(*self.work_prefix.split("/"))
        self.keys = list(config.key_columns if config.key_columns is not None else key_columns)
        item = mirrored_item(landing_zone)
        self.watch = MirrorWatch(item, config.db_schema, table, self.describe()) if item else None
        if config.confirm and self.watch is None:
            raise ConfigError(
                f"`confirm` reads the mirrored database's status, and {landing_zone.describe()} is not a "
                "mirrored database's Files/LandingZone",
                hint="point `path` at <mirrored database>/Files/LandingZone (or use workspace and database)",
                field="confirm",
            )

    def describe(self) -> str:
        return f"open_mirroring {self.table.describe()}"

    # --- sequence numbers ----------------------------------------------------------------------
    def data_files(self) -> list[str]:
        names = [o["path"] for o in self.table.list() if "/" not in o["path"]]
        return sorted(n for n in names if _DATA_FILE.match(n))

    def replayable(self) -> bool:
        """Whether the folder still holds every file published to it (numbers 1..N, no gap): Fabric
        removes the files it has applied but the last, after which only its own table shows the rows."""
        numbers = [int(name[:20]) for name in self.data_files()]
        return numbers == list(range(1, len(numbers) + 1))

    def _next_number(self) -> int:
        files = self.data_files()
        return int(files[-1][:20]) + 1 if files else 1

    def _publish(self, staged: str, path: str | None = None, record: dict[str, Any] | None = None) -> str:
        """Give a staged file the next free sequence number; a racing writer's number is never reused.

        The number is saved in the commit record (`claims`) before the rename, so a run that dies
        between the rename and saving the record is finished by the next one without publishing the
        file twice (see `_already_published`)."""
        number = self._next_number()
        while True:
            name = f"{number:020d}.parquet"
            if record is not None and path is not None:
                record.setdefault("claims", {})[staged] = name
                self._save(path, record)
            try:
                self.zone.rename(f"{self.work_prefix}/{staged}", f"{self.folder}/{name}", overwrite=False)
                return name
            except AlreadyExistsError:
                number += 1  # a racing writer's file (our own interrupted rename is found by _apply)

    def _already_published(self, staged: str, name: str, digest: str | None) -> bool:
        """Whether the staged file already became data file `name` (an interrupted publish), checked
        against the digest its commit record holds: a published path is never overwritten or reused.

        A staged file disappears only when its rename completed, so a claimed, missing staged file is
        published (the service may have processed and deleted it since); if `name` is still there it
        must hold exactly those bytes, or the run stops for a reconcile. Where a rename is copy then
        delete (Azure Blob), a crash in between leaves both: the same bytes say the copy is ours, and
        the staged copy is removed. (Records written before digests compare size and footer.)"""
        if not self.work.exists(staged):
            if digest is not None and self.table.exists(name) and self.table.digest(name) != digest:
                raise StoreError(
                    f"{self.describe()}: data file {name} does not hold the content hygge published there "
                    "(its sha256 differs from the commit record's); something else wrote that path",
                    hint="find what wrote into the table folder, then run this entity with --full-drop to "
                    "rebuild the table (a published path is never overwritten)",
                )
            return True
        if not self.table.exists(name) or self.work.size(staged) != self.table.size(name):
            return False
        if digest is not None:
            ours = self.table.digest(name) == digest
        else:
            try:
                ours = _footer(self.work, staged).equals(_footer(self.table, name))
            except (OSError, pa.ArrowException):  # not a readable parquet file: not ours
                ours = False
        if ours:
            self.work.delete(staged)
        return ours

    # --- commits -------------------------------------------------------------------------------
    def _records(self) -> list[tuple[str, dict[str, Any]]]:
        found = []
        for obj in sorted(self.work.list("commits"), key=lambda o: o["path"]):
            if obj["path"].endswith(".json"):
                found.append((obj["path"], json.loads(self.work.get(obj["path"]))))
        return found

    def _save(self, path: str, record: dict[str, Any]) -> None:
        self.work.put(path, json.dumps(record).encode())

    def recover(self) -> Commit | None:
        records = self._records()
        for path, record in records:
            if record["state"] != "applied":
                fault("om.recover")
                self._apply(path, record)
        for obj in self.work.list("staging"):
            self.work.delete(obj["path"])
        if not records:
            return None
        last = records[-1][1]
        return Commit(
            last["entity_run_id"],
            last["run_type"],
            last.get("rows"),
            ",".join(last["published"]),
            last.get("owner"),
            last.get("position"),
        )

    def _apply(self, path: str, record: dict[str, Any]) -> None:
        """Publish a committed write; every step is idempotent so a rerun can finish it."""
        self._ensure_partner_events()
        if record["run_type"] == "full_drop" and record["state"] in ("staged", "dropping"):
            # "dropping" is saved before the delete: a run that dies right after it finds the folder
            # gone, but the service may not have noticed yet, so the wait still applies.
            existed = record["state"] == "dropping" or bool(self.table.list())
            if existed and record["state"] == "staged":
                record["state"] = "dropping"
                self._save(path, record)
            self.zone.delete_folder(self.folder)
            fault("om.folder_deleted")
            record["state"] = "dropped"
            # Nothing was there to delete: nothing for the service to notice, so no wait.
            record["dropped_at"] = time.time() if existed else 0.0
            self._save(path, record)
        if record["state"] == "dropped" and self._status_readable():
            self.watch.gone(self.config.rebuild_wait_seconds)  # type: ignore[union-attr]
        elif record["state"] == "dropped":  # no status to read: a fixed wait
            remaining = record["dropped_at"] + self.config.folder_deletion_wait_seconds - time.time()
            if remaining > 0:
                fault("om.drop_wait")
                with waiting():  # only waiting: let other entities use this concurrency slot
                    time.sleep(remaining)
        self._ensure_metadata()
        fault("om.metadata_written")
        if record.get("schema"):
            self.table.put("_schema.json", json.dumps(record["schema"]["manifest"]).encode())
            self.work.put("schema.json", json.dumps(record["schema"]).encode())
        for staged in record["staged"]:
            if staged in record["done"]:
                continue
            claimed = record.get("claims", {}).get(staged)
            digest = record.get("digests", {}).get(staged)
            if claimed is not None and self._already_published(staged, claimed, digest):
                name = claimed
            elif not self.work.exists(staged):
                raise StoreError(
                    f"commit {path} of {self.describe()} lost its staged file {staged}",
                    hint="run this entity with --full-drop to rebuild the table",
                )
            else:
                name = self._publish(staged, path, record)
            record["published"].append(name)
            fault("om.file_published")
            record["done"].append(staged)
            self._save(path, record)
        fault("om.published")
        key_log.install(
            self.work, record, self.keys, f"{_stamp()}-{record['entity_run_id']}-compacted.parquet"
        )
        if record.get("boundary") and self.work.exists(record["boundary"]):
            self.work.put("boundary.parquet", self.work.get(record["boundary"]))
            self.work.delete(record["boundary"])  # staged copy: gone with its commit, not left for later
        record["state"] = "applied"
        self._save(path, record)

    def _deleted(self, request: WriteRequest, schema: pa.Schema) -> Iterator[tuple[pa.RecordBatch, int]]:
        """The run's deletes as rows: key columns with marker 2, or (soft) the last landed row with
        its deleted-at time set, as an upsert."""
        if not request.delete_count or request.run_type != "incremental" or not self.keys:
            return
        deletes = request.deletes
        assert deletes is not None
        if request.soft_column:
            rows = key_log.last_rows(self.work, self.keys, request.soft_column, deletes, schema)
            when = pa.array([request.deleted_at] * rows.num_rows, schema.field(request.soft_column).type)
            rows = rows.set_column(schema.get_field_index(request.soft_column), request.soft_column, when)
            for batch in rows.to_batches():
                yield batch, UPSERT
            return
        count = deletes.num_rows
        columns = [
            deletes.column(f.name).cast(f.type) if f.name in self.keys else pa.nulls(count, f.type)
            for f in schema
        ]
        for batch in pa.Table.from_arrays(columns, schema=schema).combine_chunks().to_batches():
            yield batch, DELETE

    def row_count(self) -> int:
        """The live landed keys, replayed from the key log (its footers would count a key changed
        twice twice, and an over-count would let the mass-delete guard pass too much)."""
        return sum(b.num_rows for b in key_log.landed_keys(self.work, self.keys, None))

    def live_key_floor(self) -> int:
        """At most the live landed keys, without a replay (see key_log.live_floor)."""
        return key_log.live_floor(self.work)

    def landed_keys(self, keys: list[str], soft_column: str | None) -> Iterator[pa.RecordBatch]:
        return key_log.landed_keys(self.work, keys, soft_column)

    # --- writing -------------------------------------------------------------------------------
    def _status_readable(self) -> bool:
        return self.watch is not None and self.watch.read()[0] is not None

    def write(self, reader: pa.RecordBatchReader, request: WriteRequest) -> Commit:
        # Every column nullable (but the row marker): Fabric takes a table's schema from its files, and
        # a non-nullable column that the source later drops breaks its schema merge.
        relaxed = all_nullable(reader.schema)
        if not relaxed.equals(reader.schema):
            reader = pa.RecordBatchReader.from_batches(
                relaxed, (pa.RecordBatch.from_arrays(b.columns, schema=relaxed) for b in reader)
            )
        run = request.entity_run_id
        baseline = 0  # the table's processed operations before this run publishes
        if request.run_type == "incremental" and self.watch is not None and self.data_files():
            found, table = self.watch.read()
            if found is not None:
                if table is None or table.failed:
                    # Incremental files go to a mirrored table only: a rebuilt one must be back first.
                    table = self.watch.back(self.config.rebuild_wait_seconds)
                baseline = table.processed_rows or 0
        # Fabric's column types (time and complex values as text, timestamps in microseconds), then
        # the row marker as the last column: only where a row can be other than an insert. Insert-only
        # files (a full load, a keyless append) carry none, which lets Fabric stage them directly
        # (a file with the column takes the row-based path even when every marker is 0).
        marked = bool(self.keys) and request.run_type == "incremental"
        schema = conform_schema(reader.schema)
        if marked:
            schema = schema.append(pa.field(ROW_MARKER, pa.int32(), nullable=False))
        boundary = Boundary(request.watermark_column, request.lookback)
        soft = request.soft_column
        log = None
        if self.keys:
            logged = reader.schema if soft else pa.schema([reader.schema.field(k) for k in self.keys])
            log = key_log.KeyLogWriter(self.work, f"staging/{run}/keys.parquet", logged)

        def fabric(batch: pa.RecordBatch, row_marker: int) -> pa.RecordBatch:
            conformed = conform_for_fabric(batch)
            if not marked:
                return conformed
            return conformed.append_column(
                schema.field(ROW_MARKER), pa.array([row_marker] * batch.num_rows, pa.int32())
            )

        def rows() -> Iterator[pa.RecordBatch]:
            for batch in reader:
                boundary.update(batch)
                if log is not None:
                    log.add(batch if soft else batch.select(self.keys), key_log.LIVE)
                yield fabric(batch, UPSERT if marked else INSERT)
            # Deletes follow the run's upserts: rows within a file are in change order.
            for batch, row_marker in self._deleted(request, reader.schema):
                if log is not None:
                    op = key_log.LIVE if soft else key_log.GONE
                    log.add(batch if soft else batch.select(self.keys), op)
                yield fabric(batch, row_marker)

        stamp = _stamp()
        staging = lambda n: f"staging/{run}/{n:05d}.parquet"  # noqa: E731
        written = write_files(rows(), schema, self.work, staging, layout_of(self.config), digests=True)
        record = {
            "entity_run_id": run,
            "run_type": request.run_type,
            "rows": sum(f.rows for f in written),
            "state": "staged",
            "staged": [f.path for f in written],
            "digests": {f.path: f.digest for f in written},  # checked before any retry advances
            "done": [],
            "published": [],
            "boundary": None,
            "watermark_max": None,
            "schema": self._schema_files(schema),
            "keys_log": log.close() if log is not None else None,
            "keys_final": f"{key_log.FOLDER}/{stamp}-{run}.parquet",
            "owner": request.owner,
            "position": request.position,
        }
        previous = None if request.run_type == "full_drop" else self._boundary_rows()
        kept = boundary.next_rows(previous, request.deletes, self.keys)
        if boundary.max is not None:
            record["watermark_max"] = str(boundary.max)
        if kept is not None:
            sink = io.BytesIO()
            pq.write_table(kept, sink)
            record["boundary"] = f"staging/{run}/boundary.parquet"
            self.work.put(record["boundary"], sink.getvalue())
        fault("om.staged")
        if request.run_type == "incremental":
            record["state"] = "pending"
        path = f"commits/{stamp}-{run}.json"
        self.work.put(path, json.dumps(record).encode(), create_only=True)
        fault("om.record_written")
        since = dt.datetime.now(dt.UTC)  # publishing begins
        self._apply(path, record)
        # Only the last record is needed; pruned by a commit only, so a run that writes nothing
        # changes nothing.
        records = sorted(o["path"] for o in self.work.list("commits") if o["path"].endswith(".json"))
        for old in records[:-10]:
            self.work.delete(old)
        confirmation = None
        if self.config.confirm and self.watch is not None and record["rows"]:
            confirmation = self.watch.confirmed(baseline, record["rows"], since, self.config.confirm)
        return Commit(
            run,
            request.run_type,
            record["rows"],
            ",".join(record["published"]),
            request.owner,
            request.position,
            confirmation=confirmation,
        )

    # --- what landed ---------------------------------------------------------------------------
    def _boundary_rows(self) -> pa.Table | None:
        try:
            return pq.read_table(io.BytesIO(self.work.get("boundary.parquet")))
        except (NotFoundError, FileNotFoundError):
            return None

    def rows_between(self, column: str, low: Any, high: Any) -> pa.Table:
        """Landed rows in [low, high]: the service deletes processed files, so hygge keeps the rows at
        the watermark boundary (within the lookback) itself."""
        rows = self._boundary_rows()
        if rows is None:
            return pa.table({})
        field = rows.column(column)
        keep = pc.and_(pc.greater_equal(field, low), pc.less_equal(field, high))
        return rows.filter(pc.fill_null(keep, False))

    def max_value(self, column: str) -> Any:
        rows = self._boundary_rows()
        if rows is None or column not in rows.column_names or not rows.num_rows:
            return None
        return pc.max(rows.column(column)).as_py()

    def scan(self) -> pa.Table:
        """Replay the table as Fabric would: files in sequence order, row markers applied by key."""
        return replay_open_mirroring(self.table, self.keys)


def _footer(storage: Storage, path: str) -> pq.FileMetaData:
    """A parquet file's footer (row groups, statistics), read without reading the data."""
    filesystem, [full] = storage.dataset_paths([path])
    return pq.read_metadata(full, filesystem=filesystem)
