"""Open Mirroring landing zone (local folder and Azurite): the contract's files, names and markers,
sequence numbers that survive the service deleting processed files and racing writers, and full_drop
that never leaves the table half-replaced."""

from __future__ import annotations

import datetime as dt
import io
import json
import re
import threading
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from hygge.errors import HyggeError, StoreError
from hygge.storage import Storage
from hygge.stores import store_root
from tests.helpers import (
    azurite_store,
    entity_of,
    journal,
    landed,
    load,
    pg_execute,
    pg_rows,
    run,
    write_project,
)

T0 = dt.datetime(2024, 1, 1, 9, 0, 0, 123456)
NAME = re.compile(r"^\d{20}\.parquet$")


def om_project(root: Path, pg_db: str, *, keys: list[str] | None, store_extra: dict | None = None) -> Path:
    store = {
        "type": "open_mirroring",
        "path": "zone",
        "folder_deletion_wait_seconds": 0,
        **(store_extra or {}),
    }
    watermark = {"watermark_column": "updated_at"}
    if keys:
        watermark["primary_key"] = keys
    return write_project(
        root,
        connections={"db": {"type": "postgres", "url": pg_db}},
        flows={
            "f": {
                "home": {"type": "sql", "connection": "db", "batch_size": 4},
                "store": store,
                "run_type": "incremental",
                "watermark": watermark,
                "entities": ["orders"],
            }
        },
    )


def create(pg_db: str, keyed: bool) -> None:
    key = ", PRIMARY KEY (region, id)" if keyed else ""
    pg_execute(
        pg_db,
        f"CREATE TABLE orders (region text, id int, amount numeric(18,4), note text, "
        f"updated_at timestamp{key})",
    )


def insert(pg_db: str, rows: list[tuple]) -> None:
    for row in rows:
        pg_execute(pg_db, ("INSERT INTO orders VALUES (%s, %s, %s, %s, %s)", row))


def row(i: int, at: dt.datetime, region: str = "eu", note: str | None = "n") -> tuple:
    return (region, i, f"{i}.5000", note, at)


def source(pg_db: str) -> list[dict]:
    _, rows = pg_rows(pg_db, "SELECT region, id, amount, note, updated_at FROM orders")
    return sorted(rows, key=lambda r: (r["region"], r["id"]))


def replayed(root: Path) -> list[dict]:
    return sorted(landed(root, "f", "orders").to_pylist(), key=lambda r: (r["region"], r["id"]))


def verified(root: Path) -> bool:
    """`hygge verify`'s library call: the replayed landing zone reconciles with the source."""
    from hygge.verify import verify_entity

    project = load(root)
    result = verify_entity(project, entity_of(project, "f", "orders"))
    assert result.ok, result.message
    return result.ok


def zone_storage(root: Path) -> Storage:
    """The LandingZone as the entity's store sees it (a local folder or an Azurite container)."""
    return store_root(entity_of(load(root), "f", "orders"), root)


def check_contract(zone: Storage, keys: list[str]) -> list[str]:
    """The folder tree matches the contract; returns the data file names."""
    events = json.loads(zone.get("_partnerEvents.json"))
    assert events["partnerName"] == "hygge" and set(events["sourceInfo"]) >= {"sourceType", "sourceVersion"}
    assert json.loads(zone.get("orders/_metadata.json")) == {"keyColumns": keys}
    names = sorted(o["path"].split("/", 1)[1] for o in zone.list("orders"))
    names = [n for n in names if "/" not in n and not n.startswith("_")]
    assert all(NAME.match(n) for n in names), names
    for name in names:
        data = pq.read_table(io.BytesIO(zone.get(f"orders/{name}")))
        # The marker, where there is one, is the last column; insert-only files carry none.
        assert "__rowMarker__" not in data.schema.names[:-1]
        assert data.num_rows > 0, "an empty data file"
        assert data.schema.field("updated_at").type == pa.timestamp("us")
    return names


def marker_of(zone: Storage, name: str) -> set[int] | None:
    """The row markers in a data file; None for an insert-only file, which carries no marker column."""
    data = pq.read_table(io.BytesIO(zone.get(f"orders/{name}")))
    if "__rowMarker__" not in data.schema.names:
        return None
    assert data.schema.names[-1] == "__rowMarker__"
    return set(data.column("__rowMarker__").to_pylist())


@pytest.fixture(params=["local", "azurite"])
def where(request) -> dict:
    """Store settings for a LandingZone in a local folder or in an Azurite container."""
    if request.param == "local":
        return {}
    return azurite_store(request, "db/Files/LandingZone")


@pytest.mark.parametrize("keys", [["region", "id"], []], ids=["composite-key", "no-key"])
def test_full_drop_increments_and_second_full_drop_replay_to_the_source(tmp_path, pg_db, keys, where) -> None:
    """Replaying the landing zone equals the source after a full_drop, three incremental rounds
    (inserts; updates when keyed; a tie at the previous maximum) and a second full_drop."""
    create(pg_db, bool(keys))
    insert(
        pg_db,
        [row(i, T0 + dt.timedelta(minutes=i)) for i in range(1, 7)] + [row(7, T0, region="us", note=None)],
    )
    root = om_project(tmp_path, pg_db, keys=keys, store_extra=where)
    zone = zone_storage(root)
    run(root, "f", "orders", run_type="full_drop")
    assert replayed(root) == source(pg_db) and verified(root)
    names = check_contract(zone, keys)
    assert names[0] == f"{1:020d}.parquet"
    assert [marker_of(zone, n) for n in names] == [None] * len(names)  # a full load: inserts only
    top = T0 + dt.timedelta(minutes=6)
    rounds = [[row(8, top + dt.timedelta(minutes=1))], [row(9, top + dt.timedelta(minutes=1))], None]
    for number, new in enumerate(rounds):
        if new is None:  # a late row that ties the previous maximum exactly
            _, [current] = pg_rows(pg_db, "SELECT max(updated_at) AS top FROM orders")
            new = [row(10, current["top"])]
        insert(pg_db, new)
        if keys and number == 1:
            pg_execute(
                pg_db,
                (
                    "UPDATE orders SET note = 'changed', updated_at = %s WHERE id IN (2, 3)",
                    (top + dt.timedelta(minutes=2),),
                ),
            )
        assert run(root, "f", "orders").status == "success"
        assert replayed(root) == source(pg_db) and verified(root), f"round {number + 1}"
    names = check_contract(zone, keys)
    numbers = [int(n[:20]) for n in names]
    assert numbers == list(range(1, len(numbers) + 1))
    # Keyed incrementals upsert (marker 4, the last column); keyless ones append inserts, unmarked.
    assert marker_of(zone, names[-1]) == ({4} if keys else None)

    run(root, "f", "orders", run_type="full_drop")
    assert replayed(root) == source(pg_db) and verified(root)
    names = check_contract(zone, keys)
    assert names[0] == f"{1:020d}.parquet" and marker_of(zone, names[0]) is None


def test_sequence_continues_after_the_service_deletes_processed_files(tmp_path, pg_db) -> None:
    """The service deletes processed files but keeps the last one: numbering continues after it."""
    create(pg_db, True)
    insert(pg_db, [row(i, T0 + dt.timedelta(minutes=i)) for i in range(1, 13)])
    root = om_project(tmp_path, pg_db, keys=["region", "id"], store_extra={"file_rows": 3})
    run(root, "f", "orders", run_type="full_drop")
    table = root / "zone" / "orders"
    names = sorted(p.name for p in table.glob("*.parquet"))
    assert len(names) >= 3
    for name in names[:-1]:
        (table / name).unlink()
    insert(pg_db, [row(20, T0 + dt.timedelta(hours=1))])
    run(root, "f", "orders")
    after = sorted(p.name for p in table.glob("*.parquet"))
    assert after == [names[-1], f"{int(names[-1][:20]) + 1:020d}.parquet"]


def test_racing_writers_never_share_a_number_or_leave_a_gap(tmp_path, where) -> None:
    """Eight threads publish staged files into one table at once (local folder and Azurite): names
    are unique and continuous."""
    from hygge.config.models import AzureCredentialConfig, OpenMirroringStoreConfig, RemoteSettings
    from hygge.stores.open_mirroring import OpenMirroringStore

    if where:
        settings = RemoteSettings(
            account=where["account"],
            endpoint=where["endpoint"],
            credential=AzureCredentialConfig(**where["credential"]),
        )
        zone = Storage.at(where["path"], None, settings)
    else:
        zone = Storage.local(tmp_path / "zone")
    config = OpenMirroringStoreConfig(type="open_mirroring", path=str(tmp_path / "zone"))
    stores = [OpenMirroringStore(zone, "t", config, ["id"]) for _ in range(8)]
    for n, store in enumerate(stores):
        for k in range(5):
            store.work.put(f"staging/w{n}/{k}.parquet", b"x")
    published: list[str] = []
    lock = threading.Lock()

    def publish(n: int) -> None:
        for k in range(5):
            name = stores[n]._publish(f"staging/w{n}/{k}.parquet")
            with lock:
                published.append(name)

    threads = [threading.Thread(target=publish, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(int(n[:20]) for n in published) == list(range(1, 41))


def test_failed_extraction_leaves_the_live_table_byte_for_byte(tmp_path, pg_db) -> None:
    """A full_drop whose extraction fails leaves the live table exactly as it was."""
    create(pg_db, True)
    insert(pg_db, [row(i, T0 + dt.timedelta(minutes=i)) for i in range(1, 9)])
    root = om_project(tmp_path, pg_db, keys=["region", "id"])
    run(root, "f", "orders", run_type="full_drop")
    table = root / "zone" / "orders"
    before = {p.name: p.read_bytes() for p in table.iterdir() if p.is_file()}
    entity_file = root / "flows" / "f" / "entities"
    entity_file.mkdir()
    (entity_file / "orders.yml").write_text(yaml.safe_dump({"columns": {"amount": "decimal(3,0)"}}))
    with pytest.raises(HyggeError):
        run(root, "f", "orders", run_type="full_drop")
    assert {p.name: p.read_bytes() for p in table.iterdir() if p.is_file()} == before


def test_full_drop_interrupted_after_the_delete_resumes_without_extracting(
    tmp_path, pg_db, monkeypatch
) -> None:
    """Killed after the table folder was deleted: the rerun publishes the staged files (no second
    extraction) and the replay equals the source."""
    from hygge.stores import open_mirroring

    create(pg_db, True)
    insert(pg_db, [row(i, T0 + dt.timedelta(minutes=i)) for i in range(1, 9)])
    root = om_project(tmp_path, pg_db, keys=["region", "id"])
    run(root, "f", "orders", run_type="full_drop")
    insert(pg_db, [row(30, T0 + dt.timedelta(hours=2))])

    real = open_mirroring.OpenMirroringStore._ensure_metadata
    calls = {"n": 0}

    def crash(self):
        calls["n"] += 1
        raise SystemExit("killed after the folder delete")

    monkeypatch.setattr(open_mirroring.OpenMirroringStore, "_ensure_metadata", crash)
    with pytest.raises(SystemExit):
        run(root, "f", "orders", run_type="full_drop")
    assert not (root / "zone" / "orders").exists() or not list((root / "zone" / "orders").glob("*.parquet"))
    monkeypatch.setattr(open_mirroring.OpenMirroringStore, "_ensure_metadata", real)

    import hygge.homes.sql.home as sql_home

    def no_extraction(*args, **kwargs):
        raise AssertionError("the rerun extracted again")

    monkeypatch.setattr(sql_home.SqlHome, "read", no_extraction)
    result = run(root, "f", "orders", run_type="full_drop")
    assert result.status == "success" and result.rows == 9
    assert replayed(root) == source(pg_db)
    assert any((e.message or "").startswith("recovered") for e in journal(root, "f", "orders"))


def test_changed_key_columns_fail_with_a_clear_message(tmp_path, pg_db) -> None:
    """_metadata.json is immutable: an entity whose keys changed fails naming both key sets and the fix."""
    create(pg_db, True)
    insert(pg_db, [row(1, T0)])
    root = om_project(tmp_path, pg_db, keys=["region", "id"])
    run(root, "f", "orders", run_type="full_drop")
    flow = root / "flows" / "f" / "flow.yml"
    flow.write_text(flow.read_text().replace("- region\n", ""))
    insert(pg_db, [row(2, T0 + dt.timedelta(minutes=1))])
    with pytest.raises(StoreError) as info:
        run(root, "f", "orders")
    text = str(info.value)
    assert "['region', 'id']" in text and "['id']" in text and "--full-drop" in text


def test_schema_added_column_is_accepted_changed_type_fails_or_rebuilds(tmp_path, pg_db) -> None:
    """An added column lands; a changed type fails naming the column, both types and the setting;
    with `schema_change: full_drop` the table is rebuilt and replays to the source. _schema.json
    types datetimes as timestamps, and lists the row marker once a file carries it."""
    create(pg_db, True)
    insert(pg_db, [row(i, T0 + dt.timedelta(minutes=i)) for i in range(1, 4)])
    root = om_project(tmp_path, pg_db, keys=["region", "id"])
    run(root, "f", "orders", run_type="full_drop")
    manifest = json.loads((root / "zone" / "orders" / "_schema.json").read_text())
    types = {c["name"]: c["type"] for c in manifest["columns"]}
    assert types["updated_at"] == "timestamp" and "__rowMarker__" not in types  # a full load: no marker
    assert next(c for c in manifest["columns"] if c["name"] == "amount")["scale"] == 4

    pg_execute(pg_db, "ALTER TABLE orders ADD COLUMN channel text")
    pg_execute(
        pg_db, ("INSERT INTO orders VALUES ('eu', 10, 1, 'n', %s, 'web')", (T0 + dt.timedelta(hours=1),))
    )
    assert run(root, "f", "orders").status == "success"
    assert replayed(root) == sorted(
        pg_rows(pg_db, "SELECT region, id, amount, note, updated_at, channel FROM orders")[1],
        key=lambda r: (r["region"], r["id"]),
    )
    manifest = json.loads((root / "zone" / "orders" / "_schema.json").read_text())
    assert [c["name"] for c in manifest["columns"]][-2:] == ["channel", "__rowMarker__"]

    pg_execute(pg_db, "ALTER TABLE orders ALTER COLUMN amount TYPE numeric(20,6)")
    pg_execute(pg_db, ("UPDATE orders SET updated_at = %s WHERE id = 1", (T0 + dt.timedelta(hours=2),)))
    with pytest.raises(StoreError) as info:
        run(root, "f", "orders")
    text = str(info.value)
    assert "'amount'" in text and "decimal128(18, 4)" in text and "decimal128(20, 6)" in text
    assert "schema_change: full_drop" in text

    flow = root / "flows" / "f" / "flow.yml"
    config = yaml.safe_load(flow.read_text())
    config["store"]["schema_change"] = "full_drop"
    flow.write_text(yaml.safe_dump(config))
    result = run(root, "f", "orders")
    assert result.status == "success" and result.run_type == "full_drop"
    assert replayed(root) == sorted(
        pg_rows(pg_db, "SELECT region, id, amount, note, updated_at, channel FROM orders")[1],
        key=lambda r: (r["region"], r["id"]),
    )


def test_waiting_full_drops_give_their_concurrency_slot_to_others(tmp_path, pg_db) -> None:
    """With concurrency 1, two full_drops that each wait 2 s after deleting their folder overlap their
    waits (the slot is handed back while waiting), so the run takes well under the 4 s of two waits."""
    import time

    from hygge.coordinator import run_entities

    pg_execute(
        pg_db,
        "CREATE TABLE a (id int PRIMARY KEY, updated_at timestamp)",
        "CREATE TABLE b (id int PRIMARY KEY, updated_at timestamp)",
        "INSERT INTO a VALUES (1, now())",
        "INSERT INTO b VALUES (1, now())",
    )
    root = write_project(
        tmp_path,
        connections={"db": {"type": "postgres", "url": pg_db}},
        flows={
            "f": {
                "home": {"type": "sql", "connection": "db"},
                "store": {"type": "open_mirroring", "path": "zone", "folder_deletion_wait_seconds": 2},
                "run_type": "full_drop",
                "watermark": {"primary_key": ["id"]},
                "entities": ["a", "b"],
            }
        },
    )
    project = load(root)
    first = time.perf_counter()
    assert run_entities(project, project.select(), concurrency=1).ok
    assert time.perf_counter() - first < 1.5, "a first load has no folder to delete, so no wait"
    start = time.perf_counter()
    summary = run_entities(project, project.select(), concurrency=1)
    elapsed = time.perf_counter() - start
    assert summary.ok, [r.message for r in summary.results]
    assert elapsed < 3.5, f"{elapsed:.1f} s: the waits did not overlap"


def test_metadata_is_written_before_any_data_file(tmp_path, pg_db, monkeypatch) -> None:
    """Order of what becomes visible in the table folder: _metadata.json, _schema.json, then data files."""
    create(pg_db, True)
    insert(pg_db, [row(i, T0 + dt.timedelta(minutes=i)) for i in range(1, 6)])
    root = om_project(tmp_path, pg_db, keys=["region", "id"], store_extra={"file_rows": 2})
    order: list[str] = []
    real_put, real_rename = Storage.put, Storage.rename

    def put(self, path, data, *, create_only=False):
        order.append(path)
        return real_put(self, path, data, create_only=create_only)

    def rename(self, src, dst, *, overwrite=False):
        order.append(dst)
        return real_rename(self, src, dst, overwrite=overwrite)

    monkeypatch.setattr(Storage, "put", put)
    monkeypatch.setattr(Storage, "rename", rename)
    run(root, "f", "orders", run_type="full_drop")
    visible = [p for p in order if p.startswith("orders/") or p in ("_metadata.json", "_schema.json")]
    data = [i for i, p in enumerate(visible) if NAME.match(p.rsplit("/", 1)[-1])]
    meta = next(i for i, p in enumerate(visible) if p.endswith("_metadata.json"))
    assert data and meta < min(data), visible
