"""Stream record batches into parquet files with bounded memory; shared by every store.

Batches are gathered into one row group until `row_group_rows` rows or `row_group_bytes` of Arrow
data, whichever comes first (readers such as Fabric and Spark prefer large row groups; the byte cap
keeps memory flat when rows are wide; the gathered batches are not copied). A new file starts once
the current one reaches `file_bytes` on disk (or `file_rows`, if set). Memory stays near one row
group whatever the table's size.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from hygge.faults import fault
from hygge.homes.base import SourceFile
from hygge.storage import Storage


@dataclass(frozen=True)
class WrittenFile:
    path: str
    rows: int
    size: int
    metadata: pq.FileMetaData
    digest: str | None = None  # sha256 of the file's bytes, where the writer asked for it


MB = 1024 * 1024


@dataclass(frozen=True)
class FileLayout:
    row_group_rows: int = 1_000_000
    row_group_bytes: int = 32 * MB
    file_bytes: int = 256 * MB
    file_rows: int | None = None
    compression: str = "snappy"
    chosen: bool = False  # the store's config sets some of these: files are re-encoded to honour them

    def rows_left(self, rows_in_file: int) -> int:
        """Rows the current file may still take before `file_rows` ends it."""
        return self.file_rows - rows_in_file if self.file_rows else self.row_group_rows


def write_files(
    batches: Iterable[pa.RecordBatch],
    schema: pa.Schema,
    location: Storage,
    name: Callable[[int], str],
    layout: FileLayout,
    copies: Sequence[SourceFile] = (),
    digests: bool = False,
) -> list[WrittenFile]:
    """Write `batches` to files named name(0), name(1), ...; on any error, remove what was written.

    With `copies` (parquet files whose bytes already hold `schema`), those are copied as they are
    instead: no decoding or encoding, so their row groups and compression are kept. With `digests`,
    each written file carries the sha256 of its bytes.
    """
    if copies:
        return copy_files(copies, location, name)
    written: list[WrittenFile] = []
    pending: list[pa.RecordBatch] = []
    pending_rows = pending_bytes = 0
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
        digest = location.written_digest(sink, state["path"]) if digests else None
        written.append(WrittenFile(state["path"], state["rows"], size, writer.writer.metadata, digest))
        state.update(writer=None, sink=None, path=None, rows=0)
        fault("files.file_closed")

    def flush() -> None:
        nonlocal pending, pending_rows, pending_bytes
        if not pending_rows:
            return
        if state["writer"] is None:
            open_file()
        state["writer"].write_table(pa.Table.from_batches(pending, schema), row_group_size=pending_rows)
        state["rows"] += pending_rows
        pending, pending_rows, pending_bytes = [], 0, 0
        fault("files.row_group")
        full = layout.file_rows is not None and state["rows"] >= layout.file_rows
        if full or state["sink"].tell() >= layout.file_bytes:
            close_file()

    try:
        for batch in batches:
            if not batch.num_rows:
                continue
            pending.append(batch)
            pending_rows += batch.num_rows
            pending_bytes += batch.nbytes
            # A row group ends at row_group_rows or row_group_bytes, or earlier where the file must end.
            if (
                pending_rows >= min(layout.row_group_rows, layout.rows_left(state["rows"]))
                or pending_bytes >= layout.row_group_bytes
            ):
                flush()
        flush()
        close_file()
    except BaseException:
        _discard(location, state, written)
        raise
    return written


def copy_files(
    copies: Sequence[SourceFile], location: Storage, name: Callable[[int], str]
) -> list[WrittenFile]:
    """Copy each source file's bytes to name(n) in `location`; on any error, remove what was copied."""
    written: list[WrittenFile] = []
    state: dict = {"writer": None, "sink": None, "path": None}
    try:
        for index, source in enumerate(copies):
            state["path"] = path = name(index)
            location.copy_in(source.filesystem, source.path, path)
            written.append(WrittenFile(path, source.metadata.num_rows, location.size(path), source.metadata))
        state["path"] = None
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


LAYOUT_SETTINGS = ("compression", "row_group_rows", "row_group_mb", "file_mb", "file_rows")


def layout_of(config: object) -> FileLayout:
    """The layout a store's config asks for (FileLayoutSettings fields)."""
    compression = getattr(config, "compression", "snappy")
    chosen = set(getattr(config, "model_fields_set", ())) & set(LAYOUT_SETTINGS)
    return FileLayout(
        chosen=bool(chosen),
        row_group_rows=getattr(config, "row_group_rows", FileLayout.row_group_rows),
        row_group_bytes=getattr(config, "row_group_mb", FileLayout.row_group_bytes // MB) * MB,
        file_bytes=getattr(config, "file_mb", FileLayout.file_bytes // MB) * MB,
        file_rows=getattr(config, "file_rows", FileLayout.file_rows),
        compression="none" if compression == "none" else compression,
    )
