"""Concurrency slots an entity can give up while it only waits (an Open Mirroring full_drop waiting
for the service to notice a deleted folder), so other entities use the time.

The coordinator (or the Prefect flow) runs each entity holding a slot of a shared semaphore; code deep
in a store calls `waiting()` around its sleep. Outside such a run, `waiting()` does nothing.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Iterator

_current: contextvars.ContextVar[threading.Semaphore | None] = contextvars.ContextVar(
    "hygge_slot", default=None
)


@contextlib.contextmanager
def holding(slots: threading.Semaphore) -> Iterator[None]:
    """Run the body in one of `slots`, and let `waiting()` inside it hand the slot back meanwhile."""
    slots.acquire()
    token = _current.set(slots)
    try:
        yield
    finally:
        _current.reset(token)
        slots.release()


@contextlib.contextmanager
def waiting() -> Iterator[None]:
    """Give the current slot back for the duration of the body (a pure wait), then take one again."""
    slots = _current.get()
    if slots is None:
        yield
        return
    slots.release()
    try:
        yield
    finally:
        slots.acquire()
