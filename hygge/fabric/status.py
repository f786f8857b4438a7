"""A mirrored database's status as the service reports it: the files it keeps in the item's
`Files/Monitoring/` folder (`replicator.json` for the database, `tables.json` for its tables),
readable with the landing zone's own storage token.

Microsoft documents no field list for these files (its Python SDK reads `tables.json`'s `tables[]`
by `sourceSchemaName` and `sourceTableName` only), so each table is read in the shape of the REST
call `getTablesMirroringStatus` (`status`, `metrics{processedRows, processedBytes, lastSyncDateTime}`,
`error{errorCode, message}`), and every field but the names may be missing. `processedRows` counts
operations the service applied, not rows in the table.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from hygge.storage import NotFoundError, Storage

MONITORING = ("Files", "Monitoring")
LANDING_ZONE = ("Files", "LandingZone")
DEFAULT_SCHEMA = "dbo"  # tables at the LandingZone's top are mirrored into dbo
FAILED = "Failed"


@dataclass(frozen=True)
class TableStatus:
    """One mirrored table as the service reports it."""

    schema: str
    table: str
    status: str  # Initialized, Snapshotting, Replicating, Reseeding, Stopped, Failed
    processed_rows: int | None = None
    processed_bytes: int | None = None
    last_sync: dt.datetime | None = None
    error_code: str | None = None
    error_message: str | None = None

    @property
    def failed(self) -> bool:
        return self.status == FAILED

    def to_json(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "sourceSchemaName": self.schema,
            "sourceTableName": self.table,
            "status": self.status,
            "metrics": {
                "processedRows": self.processed_rows or 0,
                "processedBytes": self.processed_bytes or 0,
                "lastSyncDateTime": self.last_sync.isoformat().replace("+00:00", "Z")
                if self.last_sync
                else None,
            },
        }
        if self.error_code or self.error_message:
            entry["error"] = {"errorCode": self.error_code, "message": self.error_message}
        return entry

    @classmethod
    def from_json(cls, entry: dict[str, Any]) -> TableStatus:
        metrics = entry.get("metrics") or {}
        error = entry.get("error") or {}
        return cls(
            schema=str(entry.get("sourceSchemaName") or DEFAULT_SCHEMA),
            table=str(entry.get("sourceTableName") or ""),
            status=str(entry.get("status") or "Unknown"),
            processed_rows=_int(metrics.get("processedRows")),
            processed_bytes=_int(metrics.get("processedBytes")),
            last_sync=_time(metrics.get("lastSyncDateTime")),
            error_code=error.get("errorCode") or entry.get("errorCode"),
            error_message=error.get("message") or entry.get("errorMessage"),
        )


@dataclass(frozen=True)
class MirrorStatus:
    """The mirrored database's own status and its tables'."""

    status: str | None
    error_code: str | None
    error_message: str | None
    tables: tuple[TableStatus, ...]

    def table(self, schema: str | None, name: str) -> TableStatus | None:
        wanted = (schema or DEFAULT_SCHEMA).lower(), name.lower()
        return next((t for t in self.tables if (t.schema.lower(), t.table.lower()) == wanted), None)


def mirrored_item(zone: Storage) -> Storage | None:
    """The mirrored database item holding a landing zone at `<item>/Files/LandingZone`, else None
    (a folder laid out some other way has no monitoring files to read)."""
    parts = zone.location.path.replace("\\", "/").rstrip("/").split("/")
    if [p.lower() for p in parts[-2:]] != [p.lower() for p in LANDING_ZONE]:
        return None
    return zone.parent().parent()


def read_status(item: Storage) -> MirrorStatus | None:
    """The status files of `item`, or None while the service has written none. Unreadable JSON reads
    as no status (the service rewrites the files as it goes)."""
    monitoring = item.child(*MONITORING)
    database = _json(monitoring, "replicator.json")
    tables = _json(monitoring, "tables.json")
    if database is None and tables is None:
        return None
    database = database or {}
    error = database.get("error") or {}
    entries = (tables or {}).get("tables") or []
    return MirrorStatus(
        status=database.get("status"),
        error_code=error.get("errorCode") or database.get("errorCode"),
        error_message=error.get("message") or database.get("errorMessage"),
        tables=tuple(TableStatus.from_json(e) for e in entries if isinstance(e, dict)),
    )


def _json(folder: Storage, name: str) -> dict[str, Any] | None:
    try:
        value = json.loads(folder.get(name))
    except (NotFoundError, FileNotFoundError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _time(value: Any) -> dt.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    text = value.strip().replace("Z", "+00:00")
    if "." in text:  # the service writes 7 fractional digits; Python reads at most 6
        head, _, tail = text.partition(".")
        digits = "".join(c for c in tail if c.isdigit())
        text = f"{head}.{digits[:6]}{tail[len(digits) :]}"
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
