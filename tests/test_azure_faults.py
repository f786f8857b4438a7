"""Azure faults on a real Azurite: the emulator is stopped in the middle of a parquet write."""

from __future__ import annotations

import datetime as dt

import pytest

from hygge.errors import HyggeError
from tests.helpers import entity_of, journal, landed, load, pg_execute, run
from tests.test_azure_landing import azure_project


def test_azurite_stopped_mid_write_then_rerun_lands_exactly(tmp_path, pg_db, azure_container) -> None:
    """Stopping Azurite while a parquet file streams fails the run with a storage error that names the
    location; no data file becomes visible and the journal has no success row. After a restart, the
    rerun lands exactly the source rows."""
    info, container = azure_container
    pg_execute(
        pg_db,
        "CREATE TABLE big (id int PRIMARY KEY, updated_at timestamp, note text)",
        "INSERT INTO big SELECT i, timestamp '2024-01-01' + i * interval '1 second', repeat(md5(i::text), 8) "
        "FROM generate_series(1, 60000) i",
    )
    root = azure_project(tmp_path, pg_db, info, container, "parquet", ["big"], primary_key=["id"])
    flow = root / "flows" / "f" / "flow.yml"
    flow.write_text(flow.read_text().replace("batch_size: 3", "batch_size: 2000"))

    from hygge.runner import RunIds, land_entity

    project = load(root)
    entity = entity_of(project, "f", "big")
    seen = {"rows": 0}

    def stop_half_way(rows: int) -> None:
        seen["rows"] += rows
        if seen["rows"] >= 30000 and info.running:
            info.stop()

    try:
        with pytest.raises(HyggeError) as failure:
            land_entity(project, entity, RunIds("t", "c", "f"), run_type="full_drop", on_rows=stop_half_way)
    finally:
        if not info.running:
            info.start()
    text = str(failure.value)
    assert container in text and "writing" in text and "failed" in text, text
    assert failure.value.transient, "an unreachable endpoint is worth retrying"
    assert info.key not in text
    visible = [n for n in landed(root, "f", "big").column_names] if landed(root, "f", "big").num_rows else []
    assert visible == []
    assert [e for e in journal(root, "f", "big") if e.status == "success"] == []

    result = run(root, "f", "big", run_type="full_drop")
    assert result.rows == 60000
    table = landed(root, "f", "big")
    assert table.num_rows == 60000
    assert sorted(table.column("id").to_pylist()) == list(range(1, 60001))
    assert table.schema.field("updated_at").type.unit == "us"
    assert max(table.column("updated_at").to_pylist()) == dt.datetime(2024, 1, 1) + dt.timedelta(
        seconds=60000
    )
