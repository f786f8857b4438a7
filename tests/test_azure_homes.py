"""File homes on Azure (Azurite): a folder of parquet files and a Delta table, each landed in full and
then incrementally by watermark, the filter pushed down to the scan."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest
import yaml
from deltalake import write_deltalake

from hygge.storage import Storage
from tests.helpers import landed, run

T0 = dt.datetime(2024, 1, 1, 0, 0, 0, 7)


def batch(ids: range, at: dt.datetime | None = None) -> pa.Table:
    return pa.table(
        {
            "id": pa.array(list(ids), pa.int64()),
            "at": pa.array([at or T0 + dt.timedelta(seconds=i) for i in ids], pa.timestamp("us")),
            "v": [f"v{i}" for i in ids],
        }
    )


def project(root: Path, info, container: str, home_type: str) -> Path:
    remote = {
        "account": info.account,
        "endpoint": info.blob_endpoint,
        "credential": {"type": "account_key", "account_key": info.key},
    }
    (root / "flows" / "f").mkdir(parents=True)
    (root / "hygge.yml").write_text("name: p\n")
    flow = {
        "home": {"type": home_type, "path": f"az://{container}/incoming", **remote},
        "store": {"type": "parquet", "path": f"az://{container}/lake", **remote},
        "run_type": "incremental",
        "watermark": {"primary_key": ["id"], "watermark_column": "at"},
        "entities": ["events"],
    }
    (root / "flows" / "f" / "flow.yml").write_text(yaml.safe_dump(flow))
    return root


@pytest.mark.parametrize("home_type", ["parquet", "delta"])
def test_file_home_on_azure_full_then_incremental(tmp_path, azure_container, home_type) -> None:
    """Rows at or above the previous maximum (a late row sharing it included) are read on the second
    run; the store then holds every source row once."""
    info, container = azure_container
    root = project(tmp_path, info, container, home_type)
    options = info.storage_options
    delta_uri = f"abfss://{container}@{info.account}.dfs.core.windows.net/incoming/events"

    def add(table: pa.Table, name: str) -> None:
        if home_type == "delta":
            write_deltalake(delta_uri, table, mode="append", storage_options=options)
        else:
            pl.from_arrow(table).write_parquet(
                f"az://{container}/incoming/events/{name}.parquet", storage_options=options
            )

    add(batch(range(0, 100)), "a")
    first = run(root, "f", "events")
    assert first.rows == 100
    add(batch(range(100, 110)), "b")
    add(batch(range(500, 501), at=T0 + dt.timedelta(seconds=99)), "c")  # late row at the maximum
    second = run(root, "f", "events")
    assert second.rows == 11  # 10 new and the late one (the re-read maximum landed already, unchanged)
    ids = sorted(landed(root, "f", "events").column("id").to_pylist())
    assert ids == [*range(0, 110), 500]


def test_storage_lists_and_round_trips_on_azurite(azure_container) -> None:
    """The storage layer's object operations against Azurite: put-if-absent, list, rename, delete."""
    from hygge.config.models import AzureCredentialConfig, RemoteSettings
    from hygge.storage import AlreadyExistsError

    info, container = azure_container
    storage = Storage.at(
        f"az://{container}/root",
        None,
        RemoteSettings(
            account=info.account,
            endpoint=info.blob_endpoint,
            credential=AzureCredentialConfig(type="account_key", account_key=info.key),
        ),
    )
    storage.put("a/one", b"1", create_only=True)
    with pytest.raises(AlreadyExistsError):
        storage.put("a/one", b"2", create_only=True)
    storage.rename("a/one", "a/two")
    assert [o["path"] for o in storage.list("a")] == ["a/two"]
    assert storage.get("a/two") == b"1"
    storage.delete("a/two")
    assert storage.list("a") == []


def test_debug_reports_azure_reachability_and_credential(tmp_path, azure_container) -> None:
    """`hygge debug` lists, writes and deletes a probe in each Azure store and names the credential
    type; a wrong key is reported as FAIL without printing the key."""
    from typer.testing import CliRunner

    from hygge.cli.main import app

    info, container = azure_container
    root = project(tmp_path, info, container, "parquet")
    result = CliRunner().invoke(app, ["debug", "-p", str(root)])
    assert result.exit_code == 0, result.output
    assert "writable" in result.output and "credential: account_key" in result.output
    flow = root / "flows" / "f" / "flow.yml"
    wrong = "A" * 86 + "=="
    flow.write_text(flow.read_text().replace(info.key, wrong))
    result = CliRunner().invoke(app, ["debug", "-p", str(root)])
    assert result.exit_code == 1 and "FAIL" in result.output
    assert wrong not in result.output
