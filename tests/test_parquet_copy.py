"""A full load of parquet files that already hold the pinned schema lands them byte for byte (no
decode, no encode), with rows counted and the watermark tracked; anything else is re-encoded."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hygge.config import load_project
from hygge.runner import RunIds, land_entity
from hygge.stores import make_store
from tests.helpers import write_project
from tests.test_azure_landing import azure_store

IDS = RunIds("p", "coordinator", "flow")
T0 = dt.datetime(2024, 1, 1)


def events(ids: range) -> pa.Table:
    return pa.table(
        {
            "id": pa.array(list(ids), pa.int64()),
            "name": pa.array([f"e{i}" for i in ids], pa.string()),
            "at": pa.array([T0 + dt.timedelta(seconds=i) for i in ids], pa.timestamp("us")),
        }
    )


def project(root: Path, store: dict[str, Any], run_type: str = "full_drop", **entity: Any) -> Path:
    return write_project(
        root,
        connections={},
        flows={
            "files": {
                "home": {"type": "parquet", "path": "incoming"},
                "store": store,
                "run_type": run_type,
                "watermark": {"watermark_column": "at"},
                "entities": [{"name": "events", **entity}],
            }
        },
    )


def land(root: Path):
    loaded = load_project(root)
    entity = loaded.select()[0]
    result = land_entity(loaded, entity, IDS)
    return result, make_store(entity, loaded.root)


def incoming(root: Path, *tables: pa.Table) -> list[Path]:
    folder = root / "incoming" / "events"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, table in enumerate(tables):
        paths.append(folder / f"part-{index}.parquet")
        pq.write_table(table, paths[-1], row_group_size=7)
    return paths


def landed_bytes(folder: Path) -> set[bytes]:
    return {
        p.read_bytes()
        for p in folder.rglob("*.parquet")
        if not any(part.startswith(("_", ".")) for part in p.relative_to(folder).parts)
    }


def test_a_full_load_into_parquet_copies_the_files_as_they_are(tmp_path: Path) -> None:
    root = project(tmp_path, {"type": "parquet", "path": "lake"})
    sources = incoming(root, events(range(0, 40)), events(range(40, 100)))
    result, store = land(root)
    assert result.rows == 100
    assert result.watermark_after == (T0 + dt.timedelta(seconds=99)).isoformat(timespec="microseconds")
    assert landed_bytes(root / "lake" / "events") == {p.read_bytes() for p in sources}
    assert store.scan().sort_by("id").column("id").to_pylist() == list(range(100))


def test_a_full_load_into_delta_commits_the_copied_files(tmp_path: Path) -> None:
    from deltalake import DeltaTable

    root = project(tmp_path, {"type": "delta", "path": "lake"})
    sources = incoming(root, events(range(0, 30)), events(range(30, 50)))
    result, _ = land(root)
    table = DeltaTable(str(root / "lake" / "events"))
    assert result.rows == 50 and table.count() == 50
    assert landed_bytes(root / "lake" / "events") == {p.read_bytes() for p in sources}
    adds = pa.table(table.get_add_actions(flatten=True))
    assert sorted(adds.column("num_records").to_pylist()) == [20, 30]


@pytest.mark.parametrize(
    "case",
    ["columns override", "files differ", "incremental run", "open mirroring"],
)
def test_anything_else_is_re_encoded(tmp_path: Path, case: str) -> None:
    store = {"type": "parquet", "path": "lake"}
    extra: dict[str, Any] = {}
    tables = [events(range(0, 10)), events(range(10, 20))]
    if case == "columns override":
        extra = {"columns": {"id": "double"}}
    elif case == "files differ":
        tables[1] = tables[1].cast(
            pa.schema([("id", pa.int32()), ("name", pa.string()), ("at", pa.timestamp("us"))])
        )
    elif case == "open mirroring":
        store = {"type": "open_mirroring", "path": "lake", "folder_deletion_wait_seconds": 0}
    run_type = "incremental" if case == "incremental run" else "full_drop"
    root = project(tmp_path, store, run_type, **extra)
    sources = incoming(root, *tables)
    result, _ = land(root)
    assert result.rows == 20
    assert not landed_bytes(root / "lake") & {p.read_bytes() for p in sources}


@pytest.mark.parametrize("fmt", ["parquet", "delta"])
def test_files_are_copied_into_an_azure_container(tmp_path: Path, azure_container, fmt: str) -> None:
    """Copied through the storage layer's streaming writer into Azurite; readers see exactly the rows."""
    import yaml

    info, container = azure_container
    store = azure_store(info, container, fmt)
    root = project(tmp_path, store)
    config = yaml.safe_load((root / "hygge.yml").read_text())
    config["credentials"] = {"azurite": {"type": "account_key", "account_key": info.key}}
    (root / "hygge.yml").write_text(yaml.safe_dump(config))
    sources = incoming(root, events(range(0, 25)), events(range(25, 60)))
    result, landed = land(root)
    assert result.rows == 60
    assert landed.scan().sort_by("id").column("id").to_pylist() == list(range(60))
    visible = [
        o for o in landed.location.list("") if o["path"].endswith(".parquet") and "/_" not in o["path"]
    ]
    assert {landed.location.get(o["path"]) for o in visible} == {p.read_bytes() for p in sources}


def test_a_layout_set_on_the_store_is_honoured_by_re_encoding(tmp_path: Path) -> None:
    """compression (or any row-group/file setting) on the store: the copy would ignore it, so no copy."""
    root = project(tmp_path, {"type": "parquet", "path": "lake", "compression": "zstd"})
    sources = incoming(root, events(range(0, 30)))
    result, _ = land(root)
    assert result.rows == 30
    landed = [p for p in (root / "lake" / "events").glob("*.parquet")]
    assert not {p.read_bytes() for p in landed} & {p.read_bytes() for p in sources}
    assert pq.ParquetFile(landed[0]).metadata.row_group(0).column(0).compression == "ZSTD"
