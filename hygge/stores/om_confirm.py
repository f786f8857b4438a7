"""Waiting on Fabric for an Open Mirroring table: until a rebuilt table has left the mirrored database
and rejoined it, and (with `confirm:`) until the service applied the rows a run published.

The status comes from the item's monitoring files (hygge.fabric.status). A run's rows are confirmed
when the table's processed operations reach the count read before publishing plus the rows published
(a rebuilt table starts again from 0), with a sync after the publish began; a Failed table is an error
naming the table and the service's own code and message.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass

from hygge.errors import StoreError
from hygge.fabric.status import MirrorStatus, TableStatus, read_status
from hygge.slots import waiting
from hygge.storage import Storage
from hygge.stores.base import Confirmation

POLL_SECONDS = 2.0


@dataclass
class MirrorWatch:
    """One table's status in one mirrored database item."""

    item: Storage
    schema: str | None
    table: str
    where: str  # the store's description, for messages
    poll: float = POLL_SECONDS

    def read(self) -> tuple[MirrorStatus | None, TableStatus | None]:
        found = read_status(self.item)
        return found, (found.table(self.schema, self.table) if found is not None else None)

    def _until(
        self,
        done: Callable[[TableStatus | None], bool],
        seconds: float,
        what: str,
        hint: str,
        failing: bool = True,
    ) -> TableStatus | None:
        """Poll until `done`, returning the table's status then; a Failed table ends the wait with the
        service's error where `failing`."""
        deadline = time.monotonic() + seconds
        with waiting():  # only waiting: other entities may use this concurrency slot
            while True:
                found, table = self.read()
                if found is not None and done(table):
                    return table
                if failing and table is not None and table.failed:
                    raise self._failed(table)
                if time.monotonic() >= deadline:
                    raise StoreError(f"{self.where}: {what} within {seconds:g}s", hint=hint, field="confirm")
                time.sleep(min(self.poll, max(deadline - time.monotonic(), 0.0)))

    def gone(self, seconds: float) -> None:
        """Wait until the table has disappeared from the mirrored database."""
        self._until(
            lambda table: table is None,
            seconds,
            f"table {self.table} did not leave the mirrored database after its folder was deleted",
            "check that the mirrored database is running; the rebuild resumes on the next run",
            failing=False,  # a Failed table is what a rebuild is for
        )

    def back(self, seconds: float) -> TableStatus:
        """Wait until a rebuilt table is mirrored again (and has not failed); its status then."""
        table = self._until(
            lambda table: table is not None and not table.failed,
            seconds,
            f"rebuilt table {self.table} did not reappear in the mirrored database",
            "check the table's status in Fabric; incremental runs resume once it is mirrored again",
        )
        assert table is not None
        return table

    def confirmed(self, baseline: int, rows: int, since: dt.datetime, seconds: float) -> Confirmation:
        """Wait until the service applied `rows` more operations than `baseline`, synced after `since`
        (when publishing began)."""

        def done(table: TableStatus | None) -> bool:
            if table is None or table.failed:
                return False
            synced = table.last_sync is None or table.last_sync >= since
            return (table.processed_rows or 0) >= baseline + rows and synced

        table = self._until(
            done,
            seconds,
            f"Fabric had not applied the {rows:,} row(s) this run published to table {self.table}",
            "raise `confirm:` if the mirrored database is slow, or check its status in Fabric; the rows "
            "are published and the next run carries on from them",
        )
        assert table is not None
        return Confirmation(
            table.status, table.processed_rows, (dt.datetime.now(dt.UTC) - since).total_seconds()
        )

    def _failed(self, table: TableStatus) -> StoreError:
        code = table.error_code or "no error code"
        message = table.error_message or "no message"
        return StoreError(
            f"{self.where}: Fabric reports table {table.schema}.{table.table} Failed ({code}: {message})",
            hint="fix what the service names (a changed column type or key needs --full-drop to rebuild the "
            "table), then run the entity again",
            field="confirm",
        )
