"""What every home offers: a pinned Arrow schema and a stream of batches already cast to it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import pyarrow as pa

from hygge.watermark import WatermarkValue


@dataclass(frozen=True)
class Bound:
    """Read only rows whose `column` is at least `value` (inclusive, so no shared maximum is lost)."""

    column: str
    kind: str
    value: WatermarkValue


class Home(Protocol):
    def schema(self) -> pa.Schema:
        """The pinned schema, from the source's own metadata; fixed before the first batch."""
        ...

    def read(self, bound: Bound | None = None) -> pa.RecordBatchReader:
        """Stream the entity's rows (those at or above `bound`), cast to `schema()`."""
        ...

    def describe(self) -> str:
        """Where the data comes from, safe to log (no secrets)."""
        ...


def pin_file_schema(source: pa.Schema, overrides: dict[str, str]) -> pa.Schema:
    """A file home's pinned schema: the files' own types (large/view strings and binaries as plain
    ones, as the SQL home lands them), refined by the entity's `columns:`."""
    from hygge.typemap import parse_arrow_type

    fields = []
    for fld in source:
        arrow = fld.type
        if pa.types.is_large_string(arrow) or pa.types.is_string_view(arrow):
            arrow = pa.string()
        elif pa.types.is_large_binary(arrow) or pa.types.is_binary_view(arrow):
            arrow = pa.binary()
        if fld.name in overrides:
            arrow = parse_arrow_type(overrides[fld.name])
        fields.append(pa.field(fld.name, arrow))
    return pa.schema(fields)


def scan_dataset(
    dataset: Any, schema: pa.Schema, bound: Bound | None, batch_size: int
) -> pa.RecordBatchReader:
    """Stream a pyarrow dataset with the watermark bound pushed into the scan, cast to `schema`."""
    import datetime as dt

    import pyarrow.compute as pc

    from hygge.typemap import cast_batch

    predicate = None
    if bound is not None:
        value = bound.value
        if isinstance(value, dt.datetime) and bound.kind == "datetime":
            value = pa.scalar(value, type=pa.timestamp("us"))
        predicate = pc.field(bound.column) >= value
    scanner = dataset.scanner(filter=predicate, batch_size=batch_size)
    batches = (cast_batch(b, schema) for b in scanner.to_batches() if b.num_rows)
    return pa.RecordBatchReader.from_batches(schema, batches)
