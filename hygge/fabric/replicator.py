"""A local stand-in for Fabric's Open Mirroring replicator, for tests and the demo (a test double: the
service runs only inside Fabric). It follows the documented behaviour of the service:

- a table is a folder under `Files/LandingZone` (`<schema>.schema/<table>` or, into dbo, `<table>`)
  holding `_metadata.json`; names starting with `_` are never data;
- data files `<20 digits>.parquet` are applied in sequence and a missing number blocks the files
  after it; a file without `__rowMarker__` is all inserts (upserts with `isUpsertDefaultRowMarker`);
  markers 0 insert (no duplicate check), 1 update, 2 delete, 4 upsert apply by `keyColumns`, in row
  order; processed files are deleted except the last one;
- an added column is added; a dropped nullable column reads as NULL; a dropped non-nullable column, a
  changed type, a changed `keyColumns`, a marker that is not the last column or a file it cannot read
  mark the table Failed, and it stays Failed until its folder is deleted;
- a deleted folder drops the table (it disappears from the status); a recreated folder (a new
  `_metadata.json`) starts a new table;
- the mirrored table is a Delta table under the item's `Tables/<schema>/<table>`, and the status is
  written to `Files/Monitoring/replicator.json` and `tables.json` (hygge.fabric.status's shape).

It rewrites a table's Delta files whole for every file it applies, and applies marked rows one by one
(insert-only files are appended as Arrow tables): fine for tests and demos, not for real volumes. Its own state sits in `<item>/_local_replicator/state.json`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from hygge.fabric.schema import parse_type
from hygge.fabric.status import DEFAULT_SCHEMA, FAILED, LANDING_ZONE, MONITORING, TableStatus
from hygge.storage import NotFoundError, Storage

ROW_MARKER = "__rowMarker__"
INSERT, UPDATE, DELETE, UPSERT = 0, 1, 2, 4
_DATA_FILE = re.compile(r"^(\d{20})\.parquet$")
STATE = "_local_replicator/state.json"


@dataclass(frozen=True)
class _Folder:
    schema: str
    table: str
    path: str  # relative to the LandingZone

    @property
    def key(self) -> str:
        return f"{self.schema}/{self.table}"


class TableFailed(Exception):
    """What marks a table Failed: the double's own error code and the message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class LocalReplicator:
    """Applies a landing zone's files to Delta tables the way the service does, one `step` at a time
    (or in a background thread with `running`). `files_per_step` makes it slow on purpose."""

    def __init__(self, item: Storage, *, files_per_step: int | None = None) -> None:
        self.item = item
        self.zone = item.child(*LANDING_ZONE)
        self.monitoring = item.child(*MONITORING)
        self.files_per_step = files_per_step
        self._lock = threading.Lock()
        self._saved: str | None = None  # the state this replicator wrote last

    # --- driving ------------------------------------------------------------------------------
    def step(self) -> int:
        """One pass over every table folder; the number of data files applied."""
        with self._lock:
            state = self._state()
            folders = self._folders()
            for key in [k for k in state["tables"] if k not in folders]:
                self._drop(key)  # the folder is gone: so is the table
                del state["tables"][key]
            applied = 0
            for _key, (folder, objects) in sorted(folders.items()):
                applied += self._table_step(state, folder, objects)
            self._save(state)
            return applied

    @contextlib.contextmanager
    def running(self, interval: float = 0.05) -> Iterator[LocalReplicator]:
        """Steps in a background thread until the block ends (then one last step)."""
        stop = threading.Event()

        def loop() -> None:
            while not stop.wait(interval):
                with contextlib.suppress(Exception):  # a folder deleted mid-step: the next step sees it
                    self.step()

        thread = threading.Thread(target=loop, name="local-replicator", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            stop.set()
            thread.join()
        self.step()

    def fail(self, table: str, code: str, message: str, schema: str | None = None) -> None:
        """Mark a table Failed as the service would (a failure mode for tests)."""
        with self._lock:
            state = self._state()
            entry = state["tables"].get(f"{schema or DEFAULT_SCHEMA}/{table}")
            if entry is None:
                raise KeyError(f"no mirrored table {table}")
            entry.update(status=FAILED, error_code=code, error_message=message)
            self._save(state)

    # --- one table ------------------------------------------------------------------------------
    def _table_step(self, state: dict[str, Any], folder: _Folder, objects: dict[str, dict]) -> int:
        marker = objects.get("_metadata.json")
        if marker is None:
            return 0  # not a table yet: the service waits for _metadata.json
        tag = str(marker.get("e_tag") or marker.get("last_modified"))
        entry = state["tables"].get(folder.key)
        last = f"{entry['processed']:020d}.parquet" if entry is not None else None
        if entry is None or (entry["tag"] != tag and last not in objects):
            # New, or deleted and made again (its last processed file went with it): a new table.
            if entry is not None:
                self._drop(folder.key)
            entry = state["tables"][folder.key] = _new_entry(tag, self._metadata(folder))
        entry["tag"] = tag  # a _metadata.json rewritten in place is checked below
        if entry["status"] == FAILED:
            return 0
        numbers = sorted(int(m.group(1)) for name in objects if (m := _DATA_FILE.match(name)))
        applied = 0
        try:
            metadata = self._metadata(folder)
            if metadata.get("keyColumns", []) != entry["metadata"].get("keyColumns", []):
                raise TableFailed("KeyColumnsChanged", "keyColumns in _metadata.json changed; they are fixed")
            rows = None
            for number in numbers:
                if number <= entry["processed"]:
                    continue
                if number != entry["processed"] + 1:
                    break  # a missing number blocks every later file
                if self.files_per_step is not None and applied >= self.files_per_step:
                    break
                name = f"{number:020d}.parquet"
                rows = self._apply(folder, entry, name, rows, metadata)
                entry["processed"] = number
                entry["bytes"] += int(objects[name]["size"])
                applied += 1
            if rows is not None:
                self._write_table(folder, entry, rows)
                entry["status"] = "Replicating"
                entry["last_sync"] = dt.datetime.now(dt.UTC).isoformat()
        except TableFailed as failure:
            entry.update(status=FAILED, error_code=failure.code, error_message=str(failure))
        for number in numbers:  # processed files go, the last one stays
            if number < entry["processed"]:
                self.zone.delete(f"{folder.path}/{number:020d}.parquet")
        return applied

    def _apply(
        self, folder: _Folder, entry: dict[str, Any], name: str, rows: pa.Table | None, metadata: dict
    ) -> pa.Table:
        try:
            data = pq.read_table(io.BytesIO(self.zone.get(f"{folder.path}/{name}")))
        except (pa.ArrowException, OSError) as exc:
            raise TableFailed("InvalidFile", f"{name} is not a readable parquet file: {exc}") from None
        if ROW_MARKER in data.column_names and data.column_names[-1] != ROW_MARKER:
            raise TableFailed("InvalidRowMarker", f"{name}: {ROW_MARKER} is not the last column")
        columns = entry["columns"]
        for field in data.schema:
            if field.name == ROW_MARKER:
                continue
            known = columns.get(field.name)
            if known is None:
                columns[field.name] = {"type": str(field.type), "nullable": field.nullable}
            elif known["type"] != str(field.type):
                raise TableFailed(
                    "SchemaTypeChanged",
                    f"{name}: column {field.name} changed type from {known['type']} to {field.type}",
                )
        for column, known in columns.items():
            if column not in data.column_names and not known["nullable"]:
                raise TableFailed("SchemaMergeFailed", f"{name}: non-nullable column {column} was dropped")
        keys = list(metadata.get("keyColumns", []))
        default = UPSERT if metadata.get("isUpsertDefaultRowMarker") else INSERT
        markers = data.column(ROW_MARKER).to_pylist() if ROW_MARKER in data.column_names else None
        schema = _schema(columns)
        changes = _conform(data.drop_columns([ROW_MARKER]) if markers is not None else data, schema)
        current = _conform(rows if rows is not None else self._read_table(folder), schema)
        if markers is None and default == INSERT:  # inserts only: appended as they are, no row loop
            entry["rows"] += changes.num_rows
            return pa.concat_tables([current, changes], promote_options="default")
        by_key: dict[tuple, list[dict]] = {}
        for row in current.to_pylist():
            by_key.setdefault(tuple(row.get(k) for k in keys) if keys else (len(by_key),), []).append(row)
        for i, row in enumerate(changes.to_pylist()):
            op = markers[i] if markers is not None else default
            if op not in (INSERT, UPDATE, DELETE, UPSERT):
                raise TableFailed("InvalidRowMarker", f"{name}: row marker {op!r} is not 0, 1, 2 or 4")
            if not keys:
                if op != INSERT:
                    raise TableFailed("KeyColumnsMissing", f"{name}: marker {op} needs keyColumns")
                by_key[(len(by_key),)] = [row]
                continue
            key = tuple(row.get(k) for k in keys)
            if op == INSERT:
                by_key.setdefault(key, []).append(row)
            elif op == DELETE:
                by_key.pop(key, None)
            else:
                by_key[key] = [row]
        entry["rows"] += changes.num_rows
        return pa.Table.from_pylist([row for group in by_key.values() for row in group], schema=schema)

    # --- the mirrored Delta table ----------------------------------------------------------------
    def _tables(self, key: str) -> Storage:
        schema, table = key.split("/", 1)
        return self.item.child("Tables", schema, table)

    def _read_table(self, folder: _Folder) -> pa.Table:
        from deltalake import DeltaTable

        place = self._tables(folder.key)
        if not place.list("_delta_log"):
            return pa.table({})
        return DeltaTable(place.uri, storage_options=place.options()).to_pyarrow_table()

    def _write_table(self, folder: _Folder, entry: dict[str, Any], rows: pa.Table) -> None:
        from deltalake import write_deltalake

        place = self._tables(folder.key)
        table = _conform(rows, _schema(entry["columns"]))
        write_deltalake(
            place.uri, table, mode="overwrite", schema_mode="overwrite", storage_options=place.options()
        )

    def _drop(self, key: str) -> None:
        place = self._tables(key)
        for obj in place.list():
            place.delete(obj["path"])

    # --- folders, state and status -----------------------------------------------------------------
    def _folders(self) -> dict[str, tuple[_Folder, dict[str, dict]]]:
        found: dict[str, tuple[_Folder, dict[str, dict]]] = {}
        for obj in self.zone.list():
            parts = obj["path"].split("/")
            if parts[0].startswith("_"):
                continue
            if parts[0].endswith(".schema") and len(parts) == 3:
                folder, name = (
                    _Folder(parts[0][: -len(".schema")], parts[1], f"{parts[0]}/{parts[1]}"),
                    parts[2],
                )
            elif len(parts) == 2 and not parts[0].endswith(".schema"):
                folder, name = _Folder(DEFAULT_SCHEMA, parts[0], parts[0]), parts[1]
            else:
                continue
            if folder.table.startswith("_") or (name.startswith("_") and name != "_metadata.json"):
                continue
            found.setdefault(folder.key, (folder, {}))[1][name] = obj
        return found

    def _metadata(self, folder: _Folder) -> dict[str, Any]:
        try:
            value = json.loads(self.zone.get(f"{folder.path}/_metadata.json"))
        except (NotFoundError, FileNotFoundError, ValueError):
            return {}
        return value if isinstance(value, dict) else {}

    def _state(self) -> dict[str, Any]:
        try:
            return json.loads(self.item.get(STATE))
        except (NotFoundError, FileNotFoundError):
            return {"tables": {}}

    def _save(self, state: dict[str, Any]) -> None:
        """Write the state and the monitoring files, unless this replicator last wrote exactly that
        (a background loop steps every few milliseconds, mostly finding nothing new)."""
        text = json.dumps(state)
        if text == self._saved:
            return
        self.item.put(STATE, text.encode())
        tables = []
        for key, entry in sorted(state["tables"].items()):
            schema, table = key.split("/", 1)
            last = entry.get("last_sync")
            status = TableStatus(
                schema,
                table,
                entry["status"],
                entry["rows"],
                entry["bytes"],
                dt.datetime.fromisoformat(last) if last else None,
                entry.get("error_code"),
                entry.get("error_message"),
            )
            tables.append(status.to_json())
        self.monitoring.put("tables.json", json.dumps({"tables": tables}).encode())
        self.monitoring.put("replicator.json", json.dumps({"status": "Running"}).encode())
        self._saved = text


def _new_entry(tag: str, metadata: dict[str, Any]) -> dict[str, Any]:
    return {
        "tag": tag,
        "metadata": metadata,
        "status": "Snapshotting",
        "processed": 0,
        "rows": 0,
        "bytes": 0,
        "last_sync": None,
        "columns": {},
    }


def _schema(columns: dict[str, dict[str, Any]]) -> pa.Schema:
    """The mirrored table's columns so far, in the order they first appeared, all nullable."""
    return pa.schema([pa.field(name, _type(c["type"]), nullable=True) for name, c in columns.items()])


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """`table` with exactly `schema`'s columns: a column it lacks (added later, or dropped) is NULL."""
    arrays = [
        table.column(f.name).cast(f.type)
        if f.name in table.column_names
        else pa.nulls(table.num_rows, f.type)
        for f in schema
    ]
    return pa.Table.from_arrays(arrays, schema=schema)


def _type(text: str) -> pa.DataType:
    found = parse_type(text)
    if found is None:
        raise TableFailed("UnsupportedType", f"column type {text} is not one a mirrored table holds")
    return found
