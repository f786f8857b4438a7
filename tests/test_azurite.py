"""The Azurite fixture works with the three clients hygge uses: obstore, deltalake and polars.

The storage_options contract (measured with Azurite 3.35.0, obstore 0.12.1, deltalake 1.6.6,
polars 2.1.0; Azurite listening on a random port, not 10000)::

    options = {
        "account_name": "devstoreaccount1",
        "account_key": "<Azurite's well-known dev key>",
        "endpoint": "http://127.0.0.1:<port>/devstoreaccount1",  # account name in the path
        "allow_http": "true",
    }
    # == AzuriteInfo.storage_options

- obstore:   ``AzureStore(container, config=options)`` (or ``**options``); ``allow_http`` is
             accepted in the flat config as well as in ``client_options``.
- deltalake: ``write_deltalake("abfss://<container>@<account>.dfs.core.windows.net/<path>", data,
             storage_options=options)``; ``endpoint`` takes over the host. deltalake 1.5.0 cannot
             load az:// tables ("No files in log segment"), and 1.5.1+ fail commits past version 1.
- polars:    ``pl.read_parquet / write_parquet / scan_delta / read_delta("az://<container>/...",
             storage_options=options)``.

The same dict works unchanged for all three. The ``azure_storage_*`` aliases
(``azure_storage_account_name``, ``azure_storage_account_key``, ``azure_storage_endpoint``) work
too. ``abfs://<container>@<account>.dfs.core.windows.net/<path>`` URLs also work with deltalake:
the host is ignored once ``endpoint`` is set.

Pitfalls:

- Do NOT add ``"use_emulator": "true"``: object_store then ignores ``endpoint`` and always dials
  ``http://127.0.0.1:10000`` (only the process-wide env var ``AZURITE_BLOB_STORAGE_URL`` moves
  it). ``use_emulator`` alone is enough only when Azurite is on its default port 10000.
- Without ``allow_http`` an ``http://`` endpoint fails at once with "builder error".
- Without ``account_key`` object_store falls back to the IMDS managed-identity endpoint.
- ``endpoint`` must include ``/devstoreaccount1``: Azurite URLs are path-style.
- Container names must be 3-63 characters (HTTP 400 OutOfRangeInput otherwise), and the
  container must exist before any client writes.
- With Azurite down, each call fails after its retries: about 2-10 s each with the defaults
  (obstore/deltalake: 10 retries; polars: 8), not after the nominal 180 s / 30 s retry_timeout.
"""

from __future__ import annotations

import socket

import obstore
import polars as pl
import pyarrow as pa
import pytest
from azurite import AzuriteInfo
from deltalake import DeltaTable, write_deltalake
from obstore.exceptions import AlreadyExistsError
from obstore.store import AzureStore

Container = tuple[AzuriteInfo, str]


def test_obstore_roundtrip(azure_container: Container) -> None:
    info, container = azure_container
    store = AzureStore(container, config=info.storage_options)
    obstore.put(store, "dir/a.txt", b"hello")
    assert bytes(obstore.get(store, "dir/a.txt").bytes()) == b"hello"
    listed = [meta["path"] for meta in obstore.list(store, prefix="dir").collect()]
    assert listed == ["dir/a.txt"]
    # put-if-absent, which the storage layer relies on for atomic "create".
    with pytest.raises(AlreadyExistsError):
        obstore.put(store, "dir/a.txt", b"again", mode="create")
    assert bytes(obstore.get(store, "dir/a.txt").bytes()) == b"hello"


def test_deltalake_roundtrip(azure_container: Container) -> None:
    info, container = azure_container
    uri = f"abfss://{container}@{info.account}.dfs.core.windows.net/t"
    write_deltalake(uri, pa.table({"id": [1, 2], "v": ["a", "b"]}), storage_options=info.storage_options)
    write_deltalake(
        uri, pa.table({"id": [3], "v": ["c"]}), mode="append", storage_options=info.storage_options
    )
    # A third commit: deltalake 1.5.1+ fail here on Azure ("Invalid table version: 1"); see pyproject.
    write_deltalake(
        uri, pa.table({"id": [4], "v": ["d"]}), mode="append", storage_options=info.storage_options
    )
    table = DeltaTable(uri, storage_options=info.storage_options)
    assert table.version() == 2
    assert table.to_pyarrow_table().sort_by("id").to_pydict() == {
        "id": [1, 2, 3, 4],
        "v": ["a", "b", "c", "d"],
    }


def test_polars_parquet_and_delta(azure_container: Container) -> None:
    info, container = azure_container
    df = pl.DataFrame({"id": [1, 2, 3], "v": ["a", "b", "c"]})
    df.write_parquet(f"az://{container}/p/part-0.parquet", storage_options=info.storage_options)
    got = pl.read_parquet(f"az://{container}/p/part-0.parquet", storage_options=info.storage_options)
    assert got.equals(df)

    write_deltalake(
        f"abfss://{container}@{info.account}.dfs.core.windows.net/d",
        df.to_arrow(),
        storage_options=info.storage_options,
    )
    scanned = pl.scan_delta(
        f"abfss://{container}@{info.account}.dfs.core.windows.net/d", storage_options=info.storage_options
    ).collect()
    assert scanned.sort("id").equals(df)


def test_containers_are_isolated(azure_container: Container) -> None:
    info, container = azure_container
    info.create_container(container)  # idempotent
    other = f"{container}x"
    info.create_container(other)
    obstore.put(AzureStore(container, config=info.storage_options), "only-here", b"1")
    assert obstore.list(AzureStore(other, config=info.storage_options)).collect() == []


def test_stop_then_start_keeps_data(azure_container: Container) -> None:
    info, container = azure_container
    uri = f"abfss://{container}@{info.account}.dfs.core.windows.net/t"
    write_deltalake(uri, pa.table({"id": [1, 2, 3]}), storage_options=info.storage_options)
    port = info.port

    info.stop()
    try:
        assert not info.running
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
    finally:
        info.start()

    assert info.running and info.port == port
    table = DeltaTable(uri, storage_options=info.storage_options)
    assert table.to_pyarrow_table().column("id").to_pylist() == [1, 2, 3]
    write_deltalake(uri, pa.table({"id": [4]}), mode="append", storage_options=info.storage_options)
    assert DeltaTable(uri, storage_options=info.storage_options).version() == 1
