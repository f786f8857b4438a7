"""The journal in Fabric: `__hygge.journal` and `__hygge.schema` published through Open Mirroring.

Recording an entity run only marks the mirror pending (a durable object beside the journal, so a new
container knows). A publish — once per successful flow run — writes the journal rows not yet
published as upserts keyed by `entity_run_id` (never a drop-and-reload: Fabric never shows an empty
journal), and the schema manifest of every landed entity keyed by (entity, column). The published
rows derive from the canonical snapshot, so `rebuild` can always reproduce the Fabric tables.
"""

from __future__ import annotations

import contextlib
import io
import json
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from hygge.config.models import OpenMirroringStoreConfig
from hygge.errors import HyggeError, PublishError
from hygge.fabric.schema import fabric_type, parse_type
from hygge.faults import fault
from hygge.journal import MIRROR_PENDING, Journal, new_id
from hygge.storage import NotFoundError, Storage
from hygge.stores.base import WriteRequest
from hygge.stores.open_mirroring import WORK, OpenMirroringStore

SCHEMA_NAME = "__hygge"
PENDING = MIRROR_PENDING
PUBLISHED = "mirror/published.parquet"
SCHEMA_STATE = "mirror/schema.parquet"

SCHEMA_TABLE = pa.schema(
    [
        ("entity", pa.string()),
        ("column", pa.string()),
        ("arrow_type", pa.string()),
        ("fabric_type", pa.string()),
        ("nullable", pa.bool_()),
        ("first_seen_run", pa.string()),
        ("last_seen_run", pa.string()),
    ]
)


@dataclass
class JournalMirror:
    """Publishes one journal into one LandingZone."""

    journal: Journal
    zone: Storage
    config: OpenMirroringStoreConfig

    def _store(self, table: str, keys: list[str]) -> OpenMirroringStore:
        settings = self.config.model_copy(
            update={
                "db_schema": SCHEMA_NAME,
                "key_columns": keys,
                "folder_deletion_wait_seconds": 0,
                "confirm": None,  # the journal's own tables: never held up waiting for the service
            }
        )
        return OpenMirroringStore(self.zone, table, settings, keys)

    # --- pending marker --------------------------------------------------------------------------
    def mark_pending(self) -> None:
        self.journal.location.put(PENDING, new_id().encode())

    def pending(self) -> bool:
        return self.journal.location.exists(PENDING)

    def _token(self) -> bytes | None:
        try:
            return self.journal.location.get(PENDING)
        except (NotFoundError, FileNotFoundError):
            return None

    # --- publish ---------------------------------------------------------------------------------
    def publish(self, *, rebuild: bool = False) -> int:
        """Publish what is not yet in Fabric; returns the journal rows written (0: nothing to do).

        The pending marker is cleared only after a publish succeeded, and only if no run was recorded
        meanwhile (each record writes a fresh token). What gets published never depends on the
        marker: it is every journal row not in the published set."""
        token = self._token()
        try:
            written = self._publish(rebuild)
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                raise
            message = exc.message if isinstance(exc, HyggeError) else f"{type(exc).__name__}: {exc}"
            with contextlib.suppress(Exception):
                if token is None:
                    self.mark_pending()
            raise PublishError(
                f"publishing the journal to {self.zone.describe()} failed: {message}",
                hint="the landed data is safe; the journal stays pending and the next successful run "
                "publishes it (or run `hygge journal publish`)",
                transient=getattr(exc, "transient", False),
            ) from exc
        fault("mirror.before_clear")
        if token is not None and self._token() == token:
            self.journal.location.delete(PENDING)
        return written

    def _publish(self, rebuild: bool) -> int:
        rows = self.journal.read()
        published = None if rebuild else self._read(PUBLISHED)
        fresh = rows if published is None else _not_in(rows, published)
        if fresh.num_rows == 0 and not rebuild:
            return 0
        run_id = new_id()
        version = int(pc.max(rows.column("finish_time")).value) if rows.num_rows else 0
        journal_table = self._store("journal", ["entity_run_id"])
        journal_table.recover()
        run_type = "full_drop" if rebuild else "incremental"
        journal_table.write(
            _reader(fresh), WriteRequest(run_type, run_id, version, primary_key=["entity_run_id"])
        )
        fault("mirror.journal_upserted")
        self._write(PUBLISHED, rows.select(["entity_run_id", "status"]))
        fault("mirror.published_saved")
        self._publish_schema(rows, run_id, rebuild)
        return fresh.num_rows

    def _publish_schema(self, rows: pa.Table, run_id: str, rebuild: bool) -> None:
        """One row per (entity, column) of every landed entity, with the runs that first/last saw it."""
        state = None if rebuild else self._read(SCHEMA_STATE)
        known = {(r["entity"], r["column"]): r for r in state.to_pylist()} if state is not None else {}
        changed = {}
        successes = rows.filter(pc.field("status") == "success").sort_by("finish_time").to_pylist()
        latest: dict[str, str] = {}
        for row in successes:
            if row["run_type"] != "verify":
                latest[f"{row['flow']}.{row['entity']}"] = row["entity_run_id"]
        for entity, last_run in latest.items():
            stored = self._entity_schema(entity.split(".", 1)[1])
            for name, arrow_type in stored.items():
                key = (entity, name)
                old = known.get(key)
                fabric = fabric_type(parse_type(arrow_type) or pa.string())
                record = {
                    "entity": entity,
                    "column": name,
                    "arrow_type": arrow_type,
                    "fabric_type": str(fabric),
                    "nullable": True,
                    "first_seen_run": old["first_seen_run"] if old else last_run,
                    "last_seen_run": last_run,
                }
                if old != record:
                    changed[key] = record
        if not changed and not rebuild:
            return
        known.update(changed)
        table = pa.Table.from_pylist(list(known.values()), schema=SCHEMA_TABLE)
        fresh = table if rebuild else pa.Table.from_pylist(list(changed.values()), schema=SCHEMA_TABLE)
        store = self._store("schema", ["entity", "column"])
        store.recover()
        store.write(
            _reader(fresh),
            WriteRequest(
                "full_drop" if rebuild else "incremental", run_id, 0, primary_key=["entity", "column"]
            ),
        )
        fault("mirror.schema_upserted")
        self._write(SCHEMA_STATE, table)

    def _entity_schema(self, table: str) -> dict[str, str]:
        try:
            return json.loads(self.zone.get(f"{WORK}/{table}/schema.json"))["arrow"]
        except (NotFoundError, FileNotFoundError):
            return {}

    # --- state files ---------------------------------------------------------------------------
    def _read(self, path: str) -> pa.Table | None:
        try:
            return pq.read_table(io.BytesIO(self.journal.location.get(path)))
        except (NotFoundError, FileNotFoundError):
            return None

    def _write(self, path: str, table: pa.Table) -> None:
        sink = io.BytesIO()
        pq.write_table(table, sink)
        self.journal.location.put(path, sink.getvalue())


def _not_in(rows: pa.Table, published: pa.Table) -> pa.Table:
    """Journal rows whose (entity_run_id, status) has not been published (a recovered success
    superseding a failure is published again)."""
    seen = {(r["entity_run_id"], r["status"]) for r in published.to_pylist()}
    keep = [
        (i, s) not in seen
        for i, s in zip(
            rows.column("entity_run_id").to_pylist(), rows.column("status").to_pylist(), strict=True
        )
    ]
    return rows.filter(pa.array(keep, pa.bool_()))


def _reader(table: pa.Table) -> pa.RecordBatchReader:
    return pa.RecordBatchReader.from_batches(table.schema, table.to_batches())


def mirror_for(entity: object, project: object) -> JournalMirror | None:
    """The mirror an entity's journal publishes to: its Open Mirroring LandingZone when the project
    sets `journal.mirror: true`."""
    from hygge.runner import journal_for
    from hygge.stores import store_root

    store = getattr(entity, "store", None)
    if not (project.config.journal.mirror and isinstance(store, OpenMirroringStoreConfig)):  # type: ignore[attr-defined]
        return None
    return JournalMirror(journal_for(entity, project), store_root(entity, project.root), store)  # type: ignore[arg-type, attr-defined]
