"""The local Open Mirroring replicator (hygge/fabric/replicator.py, a test double for Fabric's service)
behaves as the service is documented to, on local disk and Azurite; and hygge's status reader reads
what it writes. hygge's own store against it: test_open_mirroring_confirm.py."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from hygge.fabric.replicator import LocalReplicator
from hygge.fabric.status import mirrored_item, read_status
from hygge.storage import Storage
from tests.helpers import mirror_item


@pytest.fixture(params=["local", "azurite"])
def item(request, tmp_path: Path) -> Storage:
    """A mirrored database item: Files/LandingZone, Files/Monitoring, Tables."""
    return mirror_item(request, tmp_path).item


def put(item: Storage, path: str, table: pa.Table | dict) -> None:
    zone = item.child("Files", "LandingZone")
    if isinstance(table, dict):
        zone.put(path, json.dumps(table).encode())
        return
    sink = io.BytesIO()
    pq.write_table(table, sink)
    zone.put(path, sink.getvalue())


def name(n: int) -> str:
    return f"{n:020d}.parquet"


def mirrored(item: Storage, table: str, schema: str = "dbo") -> list[dict]:
    place = item.child("Tables", schema, table)
    data = DeltaTable(place.uri, storage_options=place.options()).to_pyarrow_table()
    return sorted(data.to_pylist(), key=lambda r: tuple(str(v) for v in r.values()))


def status(item: Storage, table: str, schema: str = "dbo"):
    found = read_status(item)
    return found.table(schema, table) if found is not None else None


def rows(ids: list[int], values: list[str], markers: list[int] | None = None) -> pa.Table:
    columns = {"id": pa.array(ids, pa.int64()), "v": pa.array(values, pa.string())}
    if markers is not None:
        columns["__rowMarker__"] = pa.array(markers, pa.int32())
    return pa.table(columns)


def test_files_apply_in_sequence_with_markers_and_the_last_file_stays(item: Storage) -> None:
    """Marker-free first file = inserts; 1 update, 2 delete, 4 upsert by key in row order; `_` names
    ignored; a missing number blocks later files; processed files are deleted but the last one."""
    put(item, "orders/_metadata.json", {"keyColumns": ["id"]})
    put(item, "_partnerEvents.json", {"partnerName": "x"})
    put(item, "orders/" + name(1), rows([1, 2, 3], ["a", "b", "c"]))
    put(item, "orders/_staging.parquet", rows([9], ["never"]))
    put(item, "orders/" + name(2), rows([1, 2, 4, 4, 5], ["a2", "", "d", "d2", "e"], [1, 2, 4, 4, 0]))
    put(item, "orders/" + name(4), rows([3], ["blocked"], [4]))  # 3 is missing
    replicator = LocalReplicator(item)
    assert replicator.step() == 2
    assert mirrored(item, "orders") == [
        {"id": 1, "v": "a2"},
        {"id": 3, "v": "c"},
        {"id": 4, "v": "d2"},
        {"id": 5, "v": "e"},
    ]
    table = status(item, "orders")
    assert table is not None and table.status == "Replicating" and table.processed_rows == 8
    assert table.last_sync is not None and not table.failed
    zone = item.child("Files", "LandingZone")
    left = sorted(o["path"] for o in zone.list("orders"))
    assert left == [
        "orders/" + name(2),
        "orders/" + name(4),
        "orders/_metadata.json",
        "orders/_staging.parquet",
    ]
    put(item, "orders/" + name(3), rows([6], ["f"], [4]))
    assert replicator.step() == 2
    assert [r["id"] for r in mirrored(item, "orders")] == [1, 3, 4, 5, 6]
    assert mirrored(item, "orders")[1] == {"id": 3, "v": "blocked"}
    assert read_status(item).status == "Running"  # type: ignore[union-attr]


def test_default_upsert_marker_and_keyless_tables(item: Storage) -> None:
    """`isUpsertDefaultRowMarker` makes marker-free rows upserts; a keyless table only appends, and a
    marker other than insert there fails the table."""
    put(item, "up/_metadata.json", {"keyColumns": ["id"], "isUpsertDefaultRowMarker": True})
    put(item, "up/" + name(1), rows([1, 2], ["a", "b"]))
    put(item, "up/" + name(2), rows([1], ["a2"]))
    put(item, "log/_metadata.json", {})
    put(item, "log/" + name(1), rows([1, 1], ["x", "x"]))
    replicator = LocalReplicator(item)
    replicator.step()
    assert mirrored(item, "up") == [{"id": 1, "v": "a2"}, {"id": 2, "v": "b"}]
    assert mirrored(item, "log") == [{"id": 1, "v": "x"}, {"id": 1, "v": "x"}]
    put(item, "log/" + name(2), rows([1], ["x"], [2]))
    replicator.step()
    failed = status(item, "log")
    assert failed is not None and failed.failed and failed.error_code == "KeyColumnsMissing"


def test_schema_changes_as_the_service_treats_them(item: Storage) -> None:
    """Added column: added; dropped nullable: NULL; changed type: Failed, and it stays Failed (later
    files wait) until the folder is deleted; the table then disappears; recreated, it starts anew."""
    put(item, "sales.schema/t/_metadata.json", {"keyColumns": ["id"]})
    put(item, "sales.schema/t/" + name(1), rows([1], ["a"]))
    wider = pa.table({"id": pa.array([2], pa.int64()), "v": ["b"], "w": pa.array([7], pa.int32())})
    put(item, "sales.schema/t/" + name(2), wider)
    put(
        item,
        "sales.schema/t/" + name(3),
        pa.table({"id": pa.array([3], pa.int64()), "w": pa.array([8], pa.int32())}),
    )
    replicator = LocalReplicator(item)
    replicator.step()
    assert mirrored(item, "t", "sales") == [
        {"id": 1, "v": "a", "w": None},
        {"id": 2, "v": "b", "w": 7},
        {"id": 3, "v": None, "w": 8},
    ]
    put(item, "sales.schema/t/" + name(4), pa.table({"id": pa.array([4], pa.int32())}))
    put(item, "sales.schema/t/" + name(5), rows([5], ["e"]))
    replicator.step()
    failed = status(item, "t", "sales")
    assert failed is not None and failed.failed and failed.error_code == "SchemaTypeChanged"
    assert "id" in (failed.error_message or "")
    assert len(mirrored(item, "t", "sales")) == 3  # nothing after the failure applied

    zone = item.child("Files", "LandingZone")
    zone.delete_folder("sales.schema/t")
    replicator.step()
    assert status(item, "t", "sales") is None  # gone from the mirrored database
    put(item, "sales.schema/t/_metadata.json", {"keyColumns": ["id"]})
    put(item, "sales.schema/t/" + name(1), rows([9], ["z"]))
    replicator.step()
    assert mirrored(item, "t", "sales") == [{"id": 9, "v": "z"}]
    assert status(item, "t", "sales").status == "Replicating"  # type: ignore[union-attr]


def test_non_nullable_column_dropped_keys_changed_bad_files_and_injected_failures(item: Storage) -> None:
    strict = pa.schema([pa.field("id", pa.int64(), nullable=False), pa.field("v", pa.string())])
    put(item, "a/_metadata.json", {"keyColumns": ["v"]})
    put(item, "a/" + name(1), pa.table({"id": [1], "v": ["x"]}, schema=strict))
    put(item, "a/" + name(2), pa.table({"v": ["y"]}))
    put(item, "b/_metadata.json", {"keyColumns": ["id"]})
    put(item, "b/" + name(1), rows([1], ["a"]))
    put(item, "c/_metadata.json", {"keyColumns": ["id"]})
    item.child("Files", "LandingZone").put("c/" + name(1), b"PAR1 not parquet")
    put(item, "d/_metadata.json", {"keyColumns": ["id"]})
    put(item, "d/" + name(1), pa.table({"__rowMarker__": pa.array([0], pa.int32()), "id": [1]}))
    replicator = LocalReplicator(item)
    replicator.step()
    put(item, "b/_metadata.json", {"keyColumns": ["id", "v"]})
    put(item, "b/" + name(2), rows([2], ["b"]))
    replicator.step()
    codes = {t: status(item, t).error_code for t in "abcd"}  # type: ignore[union-attr]
    assert codes == {
        "a": "SchemaMergeFailed",
        "b": "KeyColumnsChanged",
        "c": "InvalidFile",
        "d": "InvalidRowMarker",
    }
    put(item, "e/_metadata.json", {"keyColumns": ["id"]})
    put(item, "e/" + name(1), rows([1], ["a"]))
    replicator.step()
    replicator.fail("e", "CapacityPaused", "the capacity is paused")
    injected = status(item, "e")
    assert injected is not None and injected.failed and injected.error_message == "the capacity is paused"


def test_a_slow_replicator_takes_one_file_a_step_and_runs_in_the_background(item: Storage) -> None:
    put(item, "t/_metadata.json", {"keyColumns": ["id"]})
    for n in range(1, 4):
        put(item, "t/" + name(n), rows([n], [str(n)], [4]))
    slow = LocalReplicator(item, files_per_step=1)
    assert [slow.step(), slow.step()] == [1, 1]
    assert status(item, "t").processed_rows == 2  # type: ignore[union-attr]
    with slow.running(interval=0.01):
        put(item, "t/" + name(4), rows([4], ["4"], [4]))
        import time

        deadline = time.monotonic() + 20
        while (status(item, "t").processed_rows or 0) < 4 and time.monotonic() < deadline:  # type: ignore[union-attr]
            time.sleep(0.02)
    assert [r["id"] for r in mirrored(item, "t")] == [1, 2, 3, 4]


def test_status_reader_tolerates_the_service_shapes(tmp_path: Path) -> None:
    """Seven fractional digits, missing metrics, the SDK's flat error fields, garbage: read, not raised."""
    item = Storage.local(tmp_path / "item")
    monitoring = item.child("Files", "Monitoring")
    assert read_status(item) is None
    monitoring.put("replicator.json", b'{"status": "Running", "errorCode": null}')
    monitoring.put(
        "tables.json",
        json.dumps(
            {
                "tables": [
                    {
                        "sourceSchemaName": "dbo",
                        "sourceTableName": "Orders",
                        "status": "Replicating",
                        "metrics": {"processedRows": 6, "lastSyncDateTime": "2024-10-08T05:07:11.0663362Z"},
                    },
                    {"sourceTableName": "x", "status": "Failed", "errorCode": "E1", "errorMessage": "boom"},
                    "garbage",
                ]
            }
        ).encode(),
    )
    found = read_status(item)
    assert found is not None and found.status == "Running"
    orders = found.table(None, "orders")
    assert orders is not None and orders.processed_rows == 6 and orders.last_sync is not None
    assert orders.last_sync.microsecond == 66336 and orders.last_sync.utcoffset() is not None
    failed = found.table("dbo", "x")
    assert (
        failed is not None and failed.failed and (failed.error_code, failed.error_message) == ("E1", "boom")
    )
    monitoring.put("tables.json", b"{not json")
    assert read_status(item).tables == ()  # type: ignore[union-attr]
    assert mirrored_item(Storage.local(tmp_path / "zone")) is None
    assert mirrored_item(Storage.local(tmp_path / "db" / "Files" / "LandingZone")).uri == str(tmp_path / "db")  # type: ignore[union-attr]
