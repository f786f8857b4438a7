"""The command line's tables: no vertical rules, values never cut (a watermark is shown exactly as
the journal holds it), sized for an 80-column terminal; only the entity column folds when it must.
Long text (errors, notes, Fabric's details) goes on lines under the table, not into cells."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence

from rich import box
from rich.table import Table


def compact(title: str | None, columns: Sequence[str], right: Collection[str] = ()) -> Table:
    """A table with `columns`; the first folds if the terminal is too narrow, the others never wrap."""
    table = Table(
        title=title,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        padding=(0, 1, 0, 0),
        collapse_padding=True,
    )
    for index, column in enumerate(columns):
        table.add_column(
            column,
            justify="right" if column in right else "left",
            no_wrap=index > 0,
            overflow="fold",
        )
    return table


def ago(moment: dt.datetime | None, now: dt.datetime | None = None) -> str:
    """`12 s ago`, `5 min ago`, `3 h ago`, `2 d ago`; `-` when unknown."""
    if moment is None:
        return "-"
    now = now or dt.datetime.now(dt.UTC)
    seconds = max(0.0, (now - moment).total_seconds())
    for size, unit in ((86_400, "d"), (3_600, "h"), (60, "min")):
        if seconds >= size:
            return f"{seconds // size:.0f} {unit} ago"
    return f"{seconds:.0f} s ago"
