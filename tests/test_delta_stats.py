"""Delta statistics: every file states true bounds for the columns its table names in
`delta.dataSkippingStatsColumns`, readers skip files by them, and a filter on a column without bounds
loses no row in deltalake's pyarrow reader (which, without the property, skips every file whose
`minValues` lacks the column)."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from hygge.maintenance import maintain_entity
from hygge.stores.delta_stats import PROPERTY, listed
from tests.helpers import entity_of, load, pg_execute, run, sql_flow, write_project

ROWS, PER_FILE = 3000, 500
LONG = "x" * 5000  # over pyarrow's 4 KB statistics limit: the footer has no bounds for it


@pytest.fixture
def lake(tmp_path: Path, pg_db: str) -> Path:
    pg_execute(
        pg_db,
        "CREATE TABLE wide (id bigint PRIMARY KEY, amount numeric(38,18), score float8, note text, "
        "at timestamptz, local_at timestamp, day date, flag boolean, updated_at timestamp)",
        "INSERT INTO wide SELECT i, i / 7.0, i * 0.5, CASE WHEN i % 700 = 0 THEN repeat('x', 5000) "
        "WHEN i % 3 = 0 THEN NULL ELSE 'note ' || repeat('é', i % 90) || i END, "
        "timestamptz '2026-01-01 00:00:00.000001+00' + i * interval '1 minute 1 microsecond', "
        "timestamp '0001-01-01' + i * interval '1 day', date '9999-12-31' - i, i % 2 = 0, "
        "timestamp '2026-01-01' FROM generate_series(1, 3000) i",
    )
    flow = sql_flow("delta", ["wide"], primary_key=["id"], batch_size=100)
    flow["store"]["file_rows"] = PER_FILE
    flow["store"]["row_group_rows"] = 200
    return write_project(tmp_path, connections={"db": {"type": "postgres", "url": pg_db}}, flows={"f": flow})


def _adds(folder: Path) -> dict[str, dict]:
    """The live files' stats as the log states them: its JSON commits replayed (no checkpoint yet)."""
    live: dict[str, dict] = {}
    for commit in sorted((folder / "_delta_log").glob("*.json")):
        for action in map(json.loads, commit.read_text().splitlines()):
            if "add" in action:
                live[action["add"]["path"]] = json.loads(action["add"]["stats"])
            elif "remove" in action:
                live.pop(action["remove"]["path"], None)
    return live


def _bound(value: object, kind: pa.DataType) -> object:
    """A stated bound as a value comparable with the column's own values."""
    if pa.types.is_timestamp(kind):
        when = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        return when if kind.tz else when.replace(tzinfo=None)
    if pa.types.is_date32(kind):
        return dt.date.fromisoformat(str(value))
    return value


def test_every_file_states_true_bounds_for_the_named_columns(lake: Path) -> None:
    assert run(lake, "f", "wide").status == "success"
    table = DeltaTable(str(lake / "lake" / "wide"))
    named = listed(table.metadata().configuration)
    assert named == {"id", "note", "at", "local_at", "day", "updated_at"}, "exact types only"
    files = table.file_uris()
    assert len(files) == ROWS // PER_FILE
    for path, stats in _adds(lake / "lake" / "wide").items():
        data = pq.read_table(lake / "lake" / "wide" / path)
        assert stats["numRecords"] == data.num_rows
        assert set(stats["minValues"]) == named - {n for n in named if data.column(n).null_count == data.num_rows}
        assert not {"amount", "score", "flag"} & set(stats["minValues"]), "no bounds without an exact form"
        for name in stats["minValues"]:
            kind = data.schema.field(name).type
            values = [v for v in data.column(name).to_pylist() if v is not None]
            low, high = _bound(stats["minValues"][name], kind), _bound(stats["maxValues"][name], kind)
            assert low <= min(values) and max(values) <= high, (path, name)
            if name in ("id", "day", "at", "local_at"):
                assert (low, high) == (min(values), max(values)), f"{name}: exact bounds"
        assert stats["nullCount"]["note"] == data.column("note").null_count


def test_readers_skip_files_by_the_key_and_lose_no_row_on_other_columns(lake: Path) -> None:
    assert run(lake, "f", "wide").status == "success"
    path = str(lake / "lake" / "wide")
    table = DeltaTable(path)
    dataset = table.to_pyarrow_dataset()
    everything = len(list(dataset.get_fragments()))
    assert len(list(dataset.get_fragments(filter=ds.field("id") > ROWS - 10))) == 1, "the key prunes"
    assert pl.scan_delta(path).filter(pl.col("id") > ROWS - 10).collect().height == 10
    # Columns without bounds: deltalake's reader must keep every file (it dropped them all before).
    checks = [
        (ds.field("amount") > Decimal("100"), ("amount", ">", Decimal("100")), pl.col("amount") > 100,
         sum(1 for i in range(1, ROWS + 1) if Decimal(i) / 7 > 100)),
        (ds.field("score") > 10.0, ("score", ">", 10.0), pl.col("score") > 10.0,
         sum(1 for i in range(1, ROWS + 1) if i * 0.5 > 10)),
        (ds.field("flag") == True, ("flag", "=", True), pl.col("flag"), ROWS // 2),  # noqa: E712
    ]  # fmt: skip
    for arrow_filter, dnf, polars_filter, expected in checks:
        assert len(list(dataset.get_fragments(filter=arrow_filter))) == everything
        assert dataset.to_table(filter=arrow_filter).num_rows == expected
        assert table.to_pyarrow_table(filters=[dnf]).num_rows == expected
        assert pl.scan_delta(path).filter(polars_filter).collect().height == expected
    # A long text's bounds are the widest (its file's footer has none), never a file skipped wrongly.
    assert dataset.to_table(filter=ds.field("note") == LONG).num_rows == len(range(700, ROWS + 1, 700))


def test_an_incremental_rewrite_states_bounds_too(lake: Path, pg_db: str) -> None:
    assert run(lake, "f", "wide").status == "success"
    pg_execute(pg_db, "UPDATE wide SET note = 'changed', updated_at = timestamp '2026-02-01' WHERE id = 42")
    assert run(lake, "f", "wide").status == "success"
    table = DeltaTable(str(lake / "lake" / "wide"))
    assert all("id" in s["minValues"] for s in _adds(lake / "lake" / "wide").values())
    dataset = table.to_pyarrow_dataset()
    assert dataset.to_table(filter=ds.field("id") == 42).column("note").to_pylist() == ["changed"]
    assert dataset.to_table(filter=ds.field("amount") > Decimal("0")).num_rows == ROWS


def test_maintain_names_the_bounded_columns_of_an_older_table(lake: Path) -> None:
    """A table landed before hygge wrote bounds (no property, counts only): `hygge maintain` names the
    columns first, so the compacted files carry bounds."""
    assert run(lake, "f", "wide").status == "success"
    log = lake / "lake" / "wide" / "_delta_log" / f"{0:020d}.json"
    actions = [json.loads(line) for line in log.read_text().splitlines()]
    for action in actions:
        if "metaData" in action:
            action["metaData"]["configuration"].pop(PROPERTY)
        if "add" in action:
            stats = json.loads(action["add"]["stats"])
            action["add"]["stats"] = json.dumps({"numRecords": stats["numRecords"], "nullCount": stats["nullCount"]})
    log.write_text("".join(json.dumps(a) + "\n" for a in actions))
    project = load(lake)
    done = maintain_entity(project, entity_of(project, "f", "wide"))
    assert done.bounds and done.compacted == ROWS // PER_FILE
    table = DeltaTable(str(lake / "lake" / "wide"))
    assert "id" in listed(table.metadata().configuration)
    assert all("id" in s["minValues"] and "amount" not in s["minValues"] for s in _adds(lake / "lake" / "wide").values())
    assert table.to_pyarrow_dataset().to_table(filter=ds.field("amount") > Decimal("0")).num_rows == ROWS
