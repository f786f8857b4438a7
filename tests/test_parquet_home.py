"""The parquet-file home: a folder, a file or a glob of parquet files streamed into a store, with the
watermark filter pushed down to the scan."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hygge.config import load_project
from hygge.errors import SourceError
from hygge.runner import RunIds, land_entity
from hygge.stores import make_store

IDS = RunIds("p", "coordinator", "flow")
T0 = dt.datetime(2024, 1, 1, 12, 0, 0, 123456)


def events(ids: range, at: dt.datetime | None = None) -> pa.Table:
    return pa.table(
        {
            "id": pa.array(list(ids), pa.int64()),
            "name": pa.array([f"e{i}" for i in ids], pa.large_string()),
            "at": pa.array([at or T0 + dt.timedelta(seconds=i) for i in ids], pa.timestamp("us")),
        }
    )


def project(root: Path, store: str, key: str = "[id]", path: str | None = None) -> Path:
    (root / "hygge.yml").write_text("name: p\n")
    flow = root / "flows" / "files"
    flow.mkdir(parents=True)
    entity = f"  - name: events\n    path: {path}\n" if path else "  - events\n"
    (flow / "flow.yml").write_text(
        "home: {type: parquet, path: incoming}\n"
        f"store: {{type: {store}, path: lake}}\n"
        "run_type: incremental\n"
        f"watermark: {{primary_key: {key}, watermark_column: at}}\n"
        f"entities:\n{entity}"
    )
    (root / "incoming" / "events").mkdir(parents=True)
    return root


def land(root: Path):
    loaded = load_project(root)
    entity = loaded.select()[0]
    result = land_entity(loaded, entity, IDS)
    return result, make_store(entity, loaded.root).scan().sort_by("id")


@pytest.mark.parametrize("store", ["delta", "parquet"])
def test_folder_of_files_lands_and_then_only_newer_rows(tmp_path: Path, store: str) -> None:
    """A folder of parquet files lands exactly (large_string normalised to string); an incremental run
    reads only rows at or above the previous maximum, including a late row sharing that maximum."""
    root = project(tmp_path, store)
    pq.write_table(events(range(0, 50)), root / "incoming" / "events" / "a.parquet")
    pq.write_table(events(range(50, 100)), root / "incoming" / "events" / "b.parquet")
    (root / "incoming" / "events" / "_ignored.parquet").write_bytes(b"not parquet")
    result, landed = land(root)
    assert result.rows == 100 and landed.num_rows == 100
    assert landed.schema.field("name").type == pa.string()
    high = T0 + dt.timedelta(seconds=99)
    assert result.watermark_after == high.isoformat(timespec="microseconds")

    pq.write_table(events(range(100, 103)), root / "incoming" / "events" / "c.parquet")
    pq.write_table(events(range(200, 201), at=high), root / "incoming" / "events" / "d.parquet")
    result, landed = land(root)
    assert result.rows == 4  # 3 new and 1 late row at the maximum (its re-read twin landed already)
    assert landed.column("id").to_pylist() == [*range(0, 103), 200]


def test_without_key_the_re_read_maximum_is_not_doubled(tmp_path: Path) -> None:
    """Without a primary key, the row at the previous maximum is read again but lands once."""
    root = project(tmp_path, "parquet", key="[]")
    pq.write_table(events(range(0, 10)), root / "incoming" / "events" / "a.parquet")
    land(root)
    pq.write_table(events(range(10, 12)), root / "incoming" / "events" / "b.parquet")
    result, landed = land(root)
    assert result.rows == 2
    assert landed.column("id").to_pylist() == list(range(12))


def test_glob_and_missing_files(tmp_path: Path) -> None:
    """A glob selects files; a path with no files is one SourceError naming flow, entity and field."""
    root = project(tmp_path, "delta", path="events/2024-*.parquet")
    pq.write_table(events(range(0, 5)), root / "incoming" / "events" / "2024-01.parquet")
    pq.write_table(events(range(5, 9)), root / "incoming" / "events" / "2023-12.parquet")
    _, landed = land(root)
    assert landed.column("id").to_pylist() == list(range(5))

    (root / "incoming" / "events" / "2024-01.parquet").unlink()
    with pytest.raises(SourceError) as info:
        land(root)
    text = str(info.value)
    assert "flow 'files'" in text and "entity 'events'" in text and "field 'path'" in text
