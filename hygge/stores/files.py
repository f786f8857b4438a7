"""Stream record batches into parquet files with bounded memory; shared by the parquet and Delta stores.

Batches are gathered until `row_group_rows` and written as one row group (readers such as Fabric and
Spark prefer large row groups; the gathered batches are not copied). A new file starts after
`file_rows`. Memory stays near one row group whatever the table's size.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from hygge.faults import fault
from hygge.storage import Storage


@dataclass(frozen=True)
class WrittenFile:
    path: str
    rows: int
    size: int
    metadata: pq.FileMetaData


@dataclass(frozen=True)
class FileLayout:
    row_group_rows: int = 100_000
    file_rows: int = 10_000_000
    compression: str = "snappy"


def write_files(
    batches: Iterable[pa.RecordBatch],
    schema: pa.Schema,
    location: Storage,
    name: Callable[[int], str],
    layout: FileLayout,
) -> list[WrittenFile]:
    """Write `batches` to files named name(0), name(1), ...; on any error, remove what was written."""
    written: list[WrittenFile] = []
    pending: list[pa.RecordBatch] = []
    pending_rows = 0
    state: dict = {"writer": None, "sink": None, "path": None, "rows": 0}

    def open_file() -> None:
        path = name(len(written))
        sink = location.open_writer(path)
        if "dictionary" not in state:
            state["dictionary"] = dictionary_columns(pending[0]) if pending else False
        state.update(
            path=path,
            sink=sink,
            rows=0,
            writer=pq.ParquetWriter(
                sink,
                schema,
                compression=layout.compression,
                write_statistics=True,
                use_dictionary=state["dictionary"],
            ),
        )

    def close_file() -> None:
        writer = state["writer"]
        if writer is None:
            return
        writer.close()
        sink = state["sink"]
        if not sink.closed:
            sink.close()
        size = location.size(state["path"])
        written.append(WrittenFile(state["path"], state["rows"], size, writer.writer.metadata))
        state.update(writer=None, sink=None, path=None, rows=0)
        fault("files.file_closed")

    def flush() -> None:
        nonlocal pending, pending_rows
        if not pending_rows:
            return
        if state["writer"] is None:
            open_file()
        state["writer"].write_table(pa.Table.from_batches(pending, schema), row_group_size=pending_rows)
        state["rows"] += pending_rows
        pending, pending_rows = [], 0
        fault("files.row_group")
        if state["rows"] >= layout.file_rows:
            close_file()

    try:
        for batch in batches:
            if not batch.num_rows:
                continue
            pending.append(batch)
            pending_rows += batch.num_rows
            # A row group ends at row_group_rows, or earlier where the file must end.
            if pending_rows >= min(layout.row_group_rows, layout.file_rows - state["rows"]):
                flush()
        flush()
        close_file()
    except BaseException:
        _discard(location, state, written)
        raise
    return written


def _discard(location: Storage, state: dict, written: list[WrittenFile]) -> None:
    """Best-effort removal of what a failed write left; the original error is the one that counts
    (staged names are invisible to readers, and the next run's recovery removes leftovers)."""
    with contextlib.suppress(Exception):
        if state["writer"] is not None:
            try:
                state["writer"].close()
            finally:
                if not state["sink"].closed:
                    state["sink"].close()
    paths = ([state["path"]] if state["path"] else []) + [done.path for done in written]
    for path in paths:
        with contextlib.suppress(Exception):
            location.delete(path)


def dictionary_columns(sample: pa.RecordBatch, ratio: float = 0.2) -> list[str]:
    """Columns worth dictionary encoding, judged on the first batch: few distinct values per row.

    A dictionary's hash table grows with the distinct values of a whole row group, so encoding a
    unique column (ids, free text, uuids) costs memory and gains nothing.
    """
    chosen = []
    for field, column in zip(sample.schema, sample.columns, strict=True):
        if pa.types.is_boolean(field.type) or not sample.num_rows:
            continue
        if pc.count_distinct(column).as_py() <= ratio * sample.num_rows:
            chosen.append(field.name)
    return chosen


def layout_of(config: object) -> FileLayout:
    """The layout a store's config asks for (FileLayoutSettings fields)."""
    compression = getattr(config, "compression", "snappy")
    return FileLayout(
        row_group_rows=getattr(config, "row_group_rows", FileLayout.row_group_rows),
        file_rows=getattr(config, "file_rows", FileLayout.file_rows),
        compression="none" if compression == "none" else compression,
    )
