"""hygge's own Delta commits for keyed changes: remove the rewritten files, add their replacements.

deltalake's Python API commits new files (append, or overwrite everything) but cannot remove single
files except through its MERGE, which held 1 GB for a 1 % upsert into 10M rows (measured). So a keyed
change on a plain table is applied as the parquet store applies it (hygge.stores.rewrite) and committed
here as one log entry written put-if-absent: a commit that finds its version taken (another writer
came between) fails and leaves the table as it was. The entry holds exactly the protocol's `commitInfo`,
`txn`, `remove` and `add` actions. Tables using anything such a commit would have to honour (partitions,
deletion vectors, constraints, change data feed, column mapping, row tracking, …) keep the MERGE.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from hygge.errors import StoreError
from hygge.storage import AlreadyExistsError, Storage
from hygge.stores.files import WrittenFile

LOG = "_delta_log"
# Features a commit of removes and adds honours without doing anything: a timestamp without time zone
# only allows a type; appendOnly and invariants are checked in `own_commit_refusal` below.
_PLAIN_FEATURES = {"timestampNtz", "appendOnly", "invariants"}
_SAFE_PATH = re.compile(r"[A-Za-z0-9._/-]+")  # written to the log as it is (no URL encoding needed)
_CONFIG_IN_USE = ("delta.constraints.", "delta.enableChangeDataFeed", "delta.columnMapping.mode",
                  "delta.enableRowTracking", "delta.enableInCommitTimestamps", "delta.enableDeletionVectors",
                  "delta.appendOnly")  # fmt: skip
_NEUTRAL = {"delta.columnMapping.mode": "none"}


@dataclass(frozen=True)
class LiveFile:
    path: str
    size: int


def own_commit_refusal(table: Any) -> str | None:
    """Why this table needs deltalake's MERGE rather than hygge's commit (None: it can take hygge's)."""
    protocol = table.protocol()
    metadata = table.metadata()
    features = set(protocol.writer_features or []) | set(protocol.reader_features or [])
    if protocol.min_writer_version not in (2, 7) or protocol.min_reader_version not in (1, 3):
        return f"protocol {protocol.min_reader_version}/{protocol.min_writer_version}"
    if features - _PLAIN_FEATURES:
        return f"table features {sorted(features - _PLAIN_FEATURES)}"
    if metadata.partition_columns:
        return "a partitioned table"
    for key, value in metadata.configuration.items():
        if key.startswith(_CONFIG_IN_USE) and _NEUTRAL.get(key) != str(value).lower() and value != "false":
            return f"table property {key}={value}"
    schema = table.schema().to_json()
    if "delta.invariants" in schema or "delta.generationExpression" in schema:
        return "column invariants or generated columns"
    return None


def live_files(table: Any) -> list[LiveFile] | None:
    """The table's files, or None when one has a path that hygge would have to URL-encode."""
    actions = pa.table(table.get_add_actions(flatten=True))
    files = [
        LiveFile(path, int(size))
        for path, size in zip(
            actions.column("path").to_pylist(), actions.column("size_bytes").to_pylist(), strict=True
        )
    ]
    return files if all(_SAFE_PATH.fullmatch(f.path) for f in files) else None


def commit(
    location: Storage,
    table: Any,
    removed: list[LiveFile],
    added: list[tuple[WrittenFile, str]],
    transaction: tuple[str, int],
    info: dict[str, Any],
) -> int:
    """Write the next log entry: `removed` files out, `added` (file, stats JSON) in, the app
    transaction (id, version) set, `info` merged into commitInfo. Returns the version committed."""
    version = table.version() + 1
    now = int(time.time() * 1000)
    app_id, app_version = transaction
    actions: list[dict[str, Any]] = [
        {"commitInfo": {"timestamp": now, "clientVersion": "hygge", **info}},
        {"txn": {"appId": app_id, "version": app_version, "lastUpdated": now}},
    ]
    for gone in removed:
        actions.append(
            {
                "remove": {
                    "path": gone.path,
                    "deletionTimestamp": now,
                    "dataChange": True,
                    "extendedFileMetadata": True,
                    "partitionValues": {},
                    "size": gone.size,
                }
            }
        )
    for file, stats in added:
        actions.append(
            {
                "add": {
                    "path": file.path,
                    "partitionValues": {},
                    "size": file.size,
                    "modificationTime": now,
                    "dataChange": True,
                    "stats": stats,
                }
            }
        )
    body = "\n".join(json.dumps(a, separators=(",", ":")) for a in actions) + "\n"
    try:
        location.put(f"{LOG}/{version:020d}.json", body.encode(), create_only=True)
    except AlreadyExistsError:
        raise StoreError(
            f"version {version} of {location.describe()} was committed by another writer meanwhile; "
            "nothing of this run was committed",
            hint="run it again (an OPTIMIZE or another tool may have written the table just then)",
        ) from None
    return version


def checkpoint_due(table: Any, version: int) -> bool:
    """Whether `version` gets a checkpoint: Spark's rule, every `delta.checkpointInterval`-th version
    (10 for the tables hygge creates; 100, deltalake's default, for a table that sets none)."""
    interval = int(table.metadata().configuration.get("delta.checkpointInterval", 100) or 100)
    return version % interval == 0
