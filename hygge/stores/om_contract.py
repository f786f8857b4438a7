"""One Open Mirroring table's contract with the service: the files it reads before any data
(`_partnerEvents.json`, `_metadata.json` with its fixed key columns) and the schema changes it accepts.

Schema changes are classified as Microsoft's best practices describe them: an added column is added;
a dropped nullable column reads as NULL from then on; a dropped non-nullable column breaks the
service's schema merge; a changed type stops the table; a renamed column is a drop plus an add (a
column dropped and another added in one run is taken for a rename, since the old name would stay as
a column of NULLs). The breaking ones need a rebuild: `schema_change` fails with a message or rebuilds.
"""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa

from hygge.config.models import OpenMirroringStoreConfig
from hygge.errors import StoreError
from hygge.fabric.schema import conform_schema, schema_manifest
from hygge.storage import AlreadyExistsError, NotFoundError, Storage

METADATA = "_metadata.json"
PARTNER_EVENTS = "_partnerEvents.json"
ROW_MARKER = "__rowMarker__"
WIDE_KEY = 5  # key columns from which Fabric's merges slow down (best practices: fewer than five)


class TableContract:
    """The contract files and schema rules of one table folder (the store's base)."""

    zone: Storage
    table: Storage
    work: Storage
    config: OpenMirroringStoreConfig
    keys: list[str]

    def describe(self) -> str:
        raise NotImplementedError

    # --- contract files ------------------------------------------------------------------------
    def _ensure_partner_events(self) -> None:
        events: dict[str, Any] = {
            "partnerName": self.config.partner_name,
            "sourceInfo": {
                "sourceType": self.config.source_type,
                "sourceVersion": self.config.source_version or "",
                "additionalInformation": {"writer": "hygge"},
            },
        }
        try:
            self.zone.put(PARTNER_EVENTS, json.dumps(events).encode(), create_only=True)
        except AlreadyExistsError:
            pass

    def _ensure_metadata(self) -> None:
        """Write `_metadata.json` before any data file; an existing one must name the same keys."""
        wanted = {"keyColumns": self.keys}
        try:
            self.table.put(METADATA, json.dumps(wanted).encode(), create_only=True)
            return
        except AlreadyExistsError:
            pass
        self._check_keys_unchanged()

    def _check_keys_unchanged(self) -> None:
        """`_metadata.json`'s key columns are fixed: an entity that now names others must rebuild."""
        try:
            current = json.loads(self.table.get(METADATA))
        except (NotFoundError, FileNotFoundError):
            return
        if list(current.get("keyColumns", [])) != self.keys:
            raise StoreError(
                f"{self.describe()} has key columns {current.get('keyColumns')} but the entity now names "
                f"{self.keys}; _metadata.json cannot change",
                hint="run this entity with --full-drop to rebuild the table with the new keys",
                field="key_columns",
            )

    # --- schema changes ------------------------------------------------------------------------
    def _stored_schema(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.work.get("schema.json"))
        except (NotFoundError, FileNotFoundError):
            return None

    def check_schema(self, schema: pa.Schema, run_type: str) -> tuple[str, str | None]:
        """The run type to use, and a note for the journal (an added or dropped column, a wide key)."""
        wide = (
            f"{len(self.keys)} key columns: Fabric merges fewer than {WIDE_KEY} fastest"
            if len(self.keys) >= WIDE_KEY
            else None
        )
        if run_type == "full_drop":
            return run_type, wide
        self._check_keys_unchanged()  # every run, not only one that publishes: "nothing new" too
        stored = self._stored_schema()
        if stored is None:
            return run_type, wide
        was: dict[str, str] = stored["arrow"]
        nullable: dict[str, bool] = stored.get("nullable", {})  # older records: every column nullable
        now = {f.name: str(f.type) for f in conform_schema(schema)}
        added = [n for n in now if n not in was]
        dropped = [n for n in was if n not in now]
        changed = [(n, was[n], now[n]) for n in was if n in now and now[n] != was[n]]
        problem = None
        if changed:
            name, old, new = changed[0]
            problem = f"column '{name}' changed type from {old} to {new}; Fabric stops replicating the table"
        elif dropped and added:
            problem = (
                f"column(s) {', '.join(map(repr, dropped))} gone and {', '.join(map(repr, added))} new: a "
                "rename, which Fabric takes as a drop and an add (the old name would stay, NULL from now on)"
            )
        elif strict := [n for n in dropped if not nullable.get(n, True)]:
            problem = f"non-nullable column '{strict[0]}' is gone from the source; Fabric's schema merge fails"
        if problem is None:
            notes = [f"column {n!r} added" for n in added]
            notes += [f"column {n!r} gone from the source: NULL in Fabric from now on" for n in dropped]
            return run_type, "; ".join(notes) or None
        if self.config.schema_change == "full_drop":
            return "full_drop", f"{problem}: the table is rebuilt"
        raise StoreError(
            f"{problem}. Open Mirroring cannot change it in place",
            hint="set `schema_change: full_drop` on the store to rebuild the table, or run with --full-drop",
            field="schema_change",
        )

    def _schema_files(self, schema: pa.Schema) -> dict[str, Any]:
        data = pa.schema([f for f in schema if f.name != ROW_MARKER])
        system = [schema.field(ROW_MARKER)] if ROW_MARKER in schema.names else []
        return {
            "arrow": {f.name: str(f.type) for f in data},
            "nullable": {f.name: f.nullable for f in data},
            "manifest": schema_manifest(data, system_columns=system),
        }
