"""Open Mirroring against the local replicator (a test double for Fabric's service, see
hygge/fabric/replicator.py), with a real PostgreSQL source: `confirm:` journals what Fabric applied or
fails with the service's error; a rebuild waits for the table to leave and rejoin the mirrored
database instead of a fixed time."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
import yaml

from hygge.errors import ConfigError, StoreError
from hygge.fabric.replicator import LocalReplicator
from hygge.fabric.status import read_status
from hygge.storage import Storage
from tests.helpers import MirrorItem, journal, mirror_item, pg_execute, pg_rows, run, sql_flow, write_project

T0 = dt.datetime(2026, 1, 1)
ITEM = "Erp.MountedRelationalDatabase"


# Azurite in the slow run (`pytest -m slow`): the default run's time budget holds the local item.
@pytest.fixture(params=["local", pytest.param("azurite", marks=pytest.mark.slow)])
def place(request: pytest.FixtureRequest, tmp_path: Path) -> MirrorItem:
    return mirror_item(request, tmp_path)


LOCAL = MirrorItem({"path": f"{ITEM}/Files/LandingZone"}, Storage.local("."))  # layout checks only


def project(place: MirrorItem, tmp_path: Path, pg_db: str, **store: object) -> Path:
    zone = {"type": "open_mirroring", **place.store, "folder_deletion_wait_seconds": 0, **store}
    flow = {**sql_flow("open_mirroring", ["orders"], primary_key=["id"]), "store": zone}
    return write_project(tmp_path, connections={"db": {"type": "postgres", "url": pg_db}}, flows={"f": flow})


def source(pg_db: str) -> list[dict]:
    return sorted(pg_rows(pg_db, "SELECT id, v, updated_at FROM orders")[1], key=lambda r: r["id"])


def mirrored(place: MirrorItem) -> list[dict]:
    return sorted(place.mirrored("orders").to_pylist(), key=lambda r: r["id"])


@pytest.fixture
def orders(pg_db: str) -> str:
    pg_execute(
        pg_db,
        "CREATE TABLE orders (id int PRIMARY KEY, v text, updated_at timestamp)",
        ("INSERT INTO orders SELECT i, 'v' || i, %s FROM generate_series(1, 50) AS i", (T0,)),
    )
    return pg_db


def change(pg_db: str, at: dt.datetime) -> None:
    pg_execute(
        pg_db,
        ("UPDATE orders SET v = 'changed', updated_at = %s WHERE id <= 5", (at,)),
        ("INSERT INTO orders VALUES (100, 'new', %s)", (at,)),
    )


def test_confirm_journals_what_fabric_applied(place: MirrorItem, tmp_path: Path, orders: str) -> None:
    """A full load and an incremental, each confirmed: status, processed operations and seconds in the
    result and the journal; the mirrored table Fabric keeps equals the source."""
    root = project(place, tmp_path, orders, confirm=30)
    item = place.item
    with LocalReplicator(item).running(interval=0.02):
        first = run(root, "f", "orders", run_type="full_drop")
        change(orders, T0 + dt.timedelta(hours=1))
        second = run(root, "f", "orders")
    assert first.status == second.status == "success"
    assert first.confirmation is not None and first.confirmation.status == "Replicating"
    assert first.confirmation.processed_rows == 50
    assert second.confirmation is not None and second.confirmation.processed_rows == 56  # 50 + 6 upserts
    assert 0 <= second.confirmation.seconds < 30
    entries = [e for e in journal(root, "f", "orders") if e.status == "success"]
    assert [e.confirm_status for e in entries] == ["Replicating", "Replicating"]
    assert [e.confirm_rows for e in entries] == [50, 56]
    assert mirrored(place) == source(orders)


def test_a_failed_table_fails_the_run_with_the_service_error(place: MirrorItem, tmp_path: Path, orders: str) -> None:
    """The service marks the table Failed: the entity run fails naming the table, the service's code and
    message and what to try; the rows stay published and a rebuild brings the table back."""
    root = project(place, tmp_path, orders, confirm=30)
    item = place.item
    replicator = LocalReplicator(item)
    with replicator.running(interval=0.02):
        assert run(root, "f", "orders", run_type="full_drop").status == "success"
    replicator.fail("orders", "SchemaMergeFailed", "column v cannot be merged")
    change(orders, T0 + dt.timedelta(hours=1))
    with pytest.raises(StoreError) as info:
        run(root, "f", "orders")
    text = str(info.value)
    assert "orders" in text and "Failed" in text and "SchemaMergeFailed" in text
    assert "column v cannot be merged" in text and "--full-drop" in text
    assert journal(root, "f", "orders")[-1].status == "fail"
    with replicator.running(interval=0.02):
        rebuilt = run(root, "f", "orders", run_type="full_drop")
    assert rebuilt.status == "success" and rebuilt.confirmation is not None
    assert mirrored(place) == source(orders)


def test_confirm_times_out_when_fabric_does_not_apply(place: MirrorItem, tmp_path: Path, orders: str) -> None:
    root = project(place, tmp_path, orders, confirm=0.5)
    item = place.item
    LocalReplicator(item).step()  # status files exist, but nothing runs after this
    with pytest.raises(StoreError, match=r"had not applied the 50 row\(s\)"):
        run(root, "f", "orders", run_type="full_drop")


def test_confirm_needs_a_mirrored_database_layout(tmp_path: Path, orders: str) -> None:
    root = project(LOCAL, tmp_path, orders, confirm=5)
    flow = root / "flows" / "f" / "flow.yml"
    flow.write_text(flow.read_text().replace(f"{ITEM}/Files/LandingZone", "zone"))
    with pytest.raises(ConfigError, match="Files/LandingZone") as info:
        run(root, "f", "orders")
    assert "field 'confirm'" in str(info.value) and "flow.yml" in str(info.value)


def test_a_rebuild_waits_for_the_table_to_leave_and_come_back(place: MirrorItem, tmp_path: Path, orders: str) -> None:
    """With status to read, a full_drop waits until the table is gone from the mirrored database (not a
    clock), and the next incremental waits until the rebuilt table is back; without the service
    running, the wait ends in a clear error and the next run resumes the rebuild."""
    root = project(place, tmp_path, orders, rebuild_wait_seconds=1, folder_deletion_wait_seconds=3600)
    item = place.item
    replicator = LocalReplicator(item)
    with replicator.running(interval=0.02):
        assert run(root, "f", "orders", run_type="full_drop").status == "success"
    assert read_status(item).table(None, "orders").status == "Replicating"  # type: ignore[union-attr]
    with pytest.raises(StoreError, match="did not leave the mirrored database"):
        run(root, "f", "orders", run_type="full_drop")  # nobody drops the table: 1 s, not 3600 s
    replicator.step()  # the service notices the folder is gone: the table leaves
    assert read_status(item).table(None, "orders") is None  # type: ignore[union-attr]
    change(orders, T0 + dt.timedelta(hours=1))
    with pytest.raises(StoreError, match="did not reappear"):
        run(root, "f", "orders")  # the rebuild is finished and published; the table is not back yet
    with replicator.running(interval=0.02):
        assert run(root, "f", "orders").status == "success"
    assert mirrored(place) == source(orders)


def test_schema_changes_are_classified_as_fabric_treats_them(place: MirrorItem, tmp_path: Path, orders: str) -> None:
    """Added column: lands, noted in the journal, Fabric adds it. Dropped (nullable) column: continues,
    noted, NULL in Fabric. A drop and an add in one run: a rename, which fails or (schema_change:
    full_drop) rebuilds. Fabric's table matches what the page says after each step."""
    root = project(place, tmp_path, orders)
    item = place.item
    replicator = LocalReplicator(item)
    with replicator.running(interval=0.02):
        run(root, "f", "orders", run_type="full_drop")
        pg_execute(orders, "ALTER TABLE orders ADD COLUMN w int")
        pg_execute(
            orders, ("UPDATE orders SET w = 7, updated_at = %s WHERE id = 1", (T0 + dt.timedelta(hours=1),))
        )
        added = run(root, "f", "orders")
    assert added.status == "success" and "column 'w' added" in added.message
    assert journal(root, "f", "orders")[-1].message == added.message
    assert mirrored(place)[0] == {"id": 1, "v": "v1", "updated_at": T0 + dt.timedelta(hours=1), "w": 7}

    pg_execute(orders, "ALTER TABLE orders DROP COLUMN v")
    pg_execute(orders, ("UPDATE orders SET updated_at = %s WHERE id = 2", (T0 + dt.timedelta(hours=2),)))
    with replicator.running(interval=0.02):
        dropped = run(root, "f", "orders")
    assert dropped.status == "success" and "column 'v' gone from the source" in dropped.message
    assert mirrored(place)[1]["v"] is None and mirrored(place)[2]["v"] == "v3"  # new rows NULL, old kept

    pg_execute(orders, "ALTER TABLE orders RENAME COLUMN w TO w2")
    pg_execute(orders, ("UPDATE orders SET updated_at = %s WHERE id = 3", (T0 + dt.timedelta(hours=3),)))
    with pytest.raises(StoreError, match="a rename") as info:
        run(root, "f", "orders")
    assert (
        "'w'" in str(info.value)
        and "'w2'" in str(info.value)
        and "schema_change: full_drop" in str(info.value)
    )
    flow = root / "flows" / "f" / "flow.yml"
    config = yaml.safe_load(flow.read_text())
    config["store"]["schema_change"] = "full_drop"
    flow.write_text(yaml.safe_dump(config))
    with replicator.running(interval=0.02):
        rebuilt = run(root, "f", "orders")
    assert rebuilt.run_type == "full_drop" and "rebuilt" in rebuilt.message
    expected = sorted(pg_rows(orders, "SELECT id, updated_at, w2 FROM orders")[1], key=lambda r: r["id"])
    assert mirrored(place) == expected


def test_a_dropped_non_nullable_column_needs_a_rebuild_and_wide_keys_warn(tmp_path: Path) -> None:
    import pyarrow as pa

    from hygge.config.models import OpenMirroringStoreConfig
    from hygge.stores.open_mirroring import OpenMirroringStore

    config = OpenMirroringStoreConfig.model_validate({"type": "open_mirroring", "path": str(tmp_path)})
    store = OpenMirroringStore(Storage.local(tmp_path), "t", config, ["a", "b", "c", "d", "e"])
    strict = pa.schema([pa.field("a", pa.int64(), nullable=False), pa.field("x", pa.string())])
    wide = ("incremental", "5 key columns: Fabric merges fewer than 5 fastest")
    assert store.check_schema(strict, "incremental") == wide  # said once, as the table is made
    assert store.check_schema(strict, "full_drop") == ("full_drop", wide[1])
    store.work.put("schema.json", json.dumps(store._schema_files(strict)).encode())
    assert store.check_schema(strict, "incremental") == ("incremental", None)
    with pytest.raises(StoreError, match="non-nullable column 'a' is gone"):
        store.check_schema(pa.schema([pa.field("x", pa.string())]), "incremental")
    assert (
        store.check_schema(pa.schema([pa.field("a", pa.int64())]), "incremental")[0] == "incremental"
    )  # x: nullable


def test_hygge_status_shows_fabric_beside_the_journal(place: MirrorItem, tmp_path: Path, orders: str) -> None:
    """`hygge status`: agree once Fabric applied everything (exit 0), behind while it has not, the
    service's error for a Failed table (exit 1); the connection's password never appears."""
    from typer.testing import CliRunner

    from hygge.cli.main import app

    secret = "Planted-Pw-93731"
    planted = orders.replace("postgres@", f"postgres:{secret}@")  # the test server trusts local logins
    root = project(place, tmp_path, planted)
    item = place.item
    replicator = LocalReplicator(item)
    with replicator.running(interval=0.02):
        run(root, "f", "orders", run_type="full_drop")
    cli = CliRunner()

    def status() -> tuple[int, str]:
        result = cli.invoke(app, ["status", "--project", str(root)], env={"COLUMNS": "200"})
        assert secret not in result.output
        return result.exit_code, result.output

    code, text = status()
    assert code == 0 and "f.orders" in text and "Replicating" in text
    assert "agree" in text and "50" in text
    change(orders, T0 + dt.timedelta(hours=1))
    run(root, "f", "orders")  # published, not yet applied
    code, text = status()
    assert code == 1 and "Fabric behind by 6" in text and "dbo.orders" in text
    replicator.step()
    replicator.fail("orders", "SchemaMergeFailed", "column v cannot be merged")
    code, text = status()
    assert code == 1 and "Failed" in text and "SchemaMergeFailed: column v cannot be merged" in text


def test_verify_reaches_the_table_fabric_keeps(place: MirrorItem, tmp_path: Path, orders: str) -> None:
    """`hygge verify` reconciles the source with the landing zone and with the Delta table Fabric
    replicated: a row Fabric lost is a difference even when the landing zone is right."""
    from hygge.verify import verify_entity
    from tests.helpers import entity_of, load

    root = project(place, tmp_path, orders)
    item = place.item
    with LocalReplicator(item).running(interval=0.02):
        run(root, "f", "orders", run_type="full_drop")
    loaded = load(root)
    good = verify_entity(loaded, entity_of(loaded, "f", "orders"))
    assert good.ok and good.fabric_rows == 50 and "Fabric's table: 50 rows match" in good.message
    far = item.child("Tables", "dbo", "orders")
    from deltalake import write_deltalake

    table = place.mirrored("orders")
    write_deltalake(far.uri, table.slice(1), mode="overwrite", storage_options=far.options())  # lost a row
    bad = verify_entity(loaded, entity_of(loaded, "f", "orders"))
    assert not bad.ok and bad.landed_rows == 50 and bad.fabric_rows == 49


def test_verify_falls_back_to_fabrics_table_once_fabric_removed_files(
    place: MirrorItem, tmp_path: Path, orders: str
) -> None:
    """Fabric deletes the files it applied (all but the last), so the zone alone no longer replays to
    the table: verify then reconciles Fabric's table instead, says so, still catches a row Fabric lost,
    and fails with a message (never a MATCH on a partial replay) when that table cannot be read."""
    from deltalake import write_deltalake

    from hygge.errors import HyggeError
    from hygge.verify import verify_entity
    from tests.helpers import entity_of, load

    root = project(place, tmp_path, orders)
    item = place.item
    with LocalReplicator(item).running(interval=0.02):
        run(root, "f", "orders", run_type="full_drop")
        change(orders, T0 + dt.timedelta(days=1))
        run(root, "f", "orders")
        run(root, "f", "orders")  # no change: nothing new published
    names = [f["path"] for f in place.table("orders").list() if not f["path"].rsplit("/", 1)[-1].startswith("_")]
    assert len(names) == 1  # file 1 applied and removed by Fabric, file 2 kept as the last
    loaded = load(root)
    entity = entity_of(loaded, "f", "orders")
    good = verify_entity(loaded, entity)
    assert good.ok and good.landed_rows == 51 and good.fabric_rows == 51
    assert "Fabric's table" in good.message and "removed the landing zone files" in good.message

    far = item.child("Tables", "dbo", "orders")
    table = place.mirrored("orders")
    write_deltalake(far.uri, table.slice(1), mode="overwrite", storage_options=far.options())
    lost = verify_entity(loaded, entity)
    assert not lost.ok and lost.landed_rows == 50

    far.parent().delete_folder("orders")
    with pytest.raises(HyggeError) as caught:
        verify_entity(loaded, entity)
    assert "not readable" in caught.value.message and "Tables/" in caught.value.message
    verifies = [e for e in journal(root, "f", "orders") if e.run_type == "verify"]
    assert [e.status for e in verifies] == ["success", "fail", "fail"]


def test_the_prefect_artifact_row_carries_the_confirmation() -> None:
    from hygge.prefect.results import artifact_row as _row
    from hygge.prefect.results import public_result as _public
    from hygge.runner import EntityResult
    from hygge.stores.base import Confirmation

    result = EntityResult("f", "orders", "success", "incremental", rows=6)
    result.confirmation = Confirmation("Replicating", 56, 2.25)
    public = _public(result)
    assert public["fabric"] == {"status": "Replicating", "processed_rows": 56, "seconds": 2.25}
    assert _row(public)["fabric"] == "Replicating in 2.2 s"
    assert _row(_public(EntityResult("f", "t", "success", "full_drop")))["fabric"] == ""


def test_the_run_summary_shows_fabric_only_where_a_run_was_confirmed() -> None:
    from rich.console import Console

    from hygge.cli.progress import print_summary
    from hygge.coordinator import RunSummary
    from hygge.runner import EntityResult
    from hygge.stores.base import Confirmation

    confirmed = EntityResult("f", "orders", "success", "incremental", rows=6)
    confirmed.confirmation = Confirmation("Replicating", 56, 3.14)
    console = Console(record=True, width=160)
    print_summary(console, RunSummary("r", [confirmed, EntityResult("f", "lines", "success", "incremental")]))
    text = console.export_text()
    assert "fabric" in text and "Replicating in 3.1 s" in text
    plain = Console(record=True, width=160)
    print_summary(plain, RunSummary("r", [EntityResult("f", "lines", "success", "incremental")]))
    assert "fabric" not in plain.export_text()
