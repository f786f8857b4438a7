"""Named fault points for crash tests: `HYGGE_FAULT=<point>[:<n>][:<action>]` kills or stalls the process there.

`fault("parquet.renamed")` does nothing unless the environment variable `HYGGE_FAULT` (read once, at
import) names that point. Then, on the point's n-th hit (default 1), it performs the action:

- `kill` (default): print `hygge fault: <point> hit <n>` to stderr and SIGKILL the process itself, the
  way a power cut or an OOM kill ends it (no `finally`, no atexit, no flushing);
- `sleep`: print the same line and sleep `HYGGE_FAULT_SLEEP` seconds (default 5), so a test can break a
  dependency (terminate a database backend, stop a server) at a precise moment;
- `enospc`: raise `OSError(ENOSPC)`, as a full disk would at a write call.

When `HYGGE_FAULT` is unset, `fault` is one comparison against a module constant. `POINTS` lists every
point the code exposes (tests check that each one is in the code and that crash tests reach them).
"""

from __future__ import annotations

import errno
import os
import signal
import sys
import time

ENV = "HYGGE_FAULT"
ENV_SLEEP = "HYGGE_FAULT_SLEEP"

#: Every fault point, where it sits and why a crash there matters.
POINTS: dict[str, str] = {
    "extract.batch": "runner: a batch was read from the home (use :n for mid-stream)",
    "files.row_group": "files writer: a row group went into a staged data file",
    "files.file_closed": "files writer: a staged data file was closed",
    "parquet.staged": "parquet store: all files staged, no commit record yet",
    "parquet.record_written": "parquet store: commit record written, nothing renamed yet",
    "parquet.renamed": "parquet store: one staged file renamed into place (use :n)",
    "parquet.applied": "parquet store: renames and deletes done, record not yet marked applied",
    "parquet.recover": "parquet store recovery: about to roll a pending commit forward",
    "delta.staged": "delta store: data files written beside the log, not committed",
    "delta.committed": "delta store: transaction committed, not yet reported",
    "om.staged": "open mirroring: files staged, no commit record yet",
    "om.record_written": "open mirroring: commit record written, nothing published",
    "om.folder_deleted": "open mirroring full_drop: table folder deleted, state not yet saved",
    "om.drop_wait": "open mirroring full_drop: waiting for the service to notice the deletion",
    "om.metadata_written": "open mirroring: _metadata.json written, no data file yet",
    "om.file_published": "open mirroring: one staged file renamed to its sequence number (use :n)",
    "om.published": "open mirroring: every file published, boundary and state not yet saved",
    "om.recover": "open mirroring recovery: about to roll a pending commit forward",
    "runner.committed": "runner: the store committed, the journal has no row yet (watermark not advanced)",
    "runner.recovered": "runner: an unjournaled commit was just journaled by recovery",
    "journal.recorded": "journal: run object written, mirror pending marker not yet set",
    "journal.lease_taken": "journal compaction: lease taken, nothing folded",
    "journal.snapshot_written": "journal compaction: snapshot written, run objects not yet removed",
    "journal.run_folded": "journal compaction: one run object removed (use :n)",
    "mirror.journal_upserted": "Fabric journal publish: __hygge.journal upserted, published set not saved",
    "mirror.published_saved": "Fabric journal publish: published set saved, schema table not yet written",
    "mirror.schema_upserted": "Fabric journal publish: __hygge.schema upserted, its state not saved",
    "mirror.before_clear": "Fabric journal publish: everything written, pending marker not yet cleared",
}

_SPEC = os.environ.get(ENV) or None
_hits: dict[str, int] = {}


def _parse(spec: str) -> tuple[str, int, str]:
    """`point[:n][:action]` → (point, n, action)."""
    point, *rest = spec.strip().split(":")
    nth, action = 1, "kill"
    for part in rest:
        if part.isdigit():
            nth = int(part)
        elif part:
            action = part
    return point, nth, action


_TARGET = _parse(_SPEC) if _SPEC else None


def arm(spec: str | None) -> None:
    """Set (or clear, with None) the fault spec in this process; for in-process tests."""
    global _SPEC, _TARGET
    _SPEC = spec or None
    _TARGET = _parse(spec) if spec else None
    _hits.clear()


def fault(point: str) -> None:
    """Act here if `HYGGE_FAULT` names this point (and this is its n-th hit); otherwise do nothing."""
    if _TARGET is None or _TARGET[0] != point:
        return
    _hits[point] = count = _hits.get(point, 0) + 1
    if count != _TARGET[1]:
        return
    action = _TARGET[2]
    if action == "enospc":
        raise OSError(errno.ENOSPC, f"No space left on device (fault point {point})")
    os.write(2, f"hygge fault: {point} hit {count}\n".encode())
    if action == "sleep":
        time.sleep(float(os.environ.get(ENV_SLEEP, "5")))
        return
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)
