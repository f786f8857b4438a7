"""Extraction on its own thread: batches reach the writer through a small bounded queue.

The SQL drivers hold the GIL while they wait for a batch, so fetching and casting on their own
thread lets parquet encoding (which releases the GIL) run meanwhile; the queue bound keeps memory at
a couple of batches. File homes do without: pyarrow decodes on its own threads, and a second thread's
allocations cost ~50 MB of peak memory there for no gain (10M rows, measured).
"""

from __future__ import annotations

import contextvars
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")

_DONE = object()


@dataclass(frozen=True)
class _Failed:
    error: BaseException


def prefetch(items: Iterator[T], depth: int = 2) -> Iterator[T]:
    """Iterate `items` on a worker thread, at most `depth` ahead of the consumer.

    An error in the worker is raised in the consumer; if the consumer stops early (its own error,
    or it closes this generator), the worker stops at its next item and closes `items`.
    """
    handoff: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def offer(item: object) -> bool:
        while not stop.is_set():
            try:
                handoff.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not offer(item):
                    return
            offer(_DONE)
        except BaseException as exc:  # handed to the consumer, which raises it
            offer(_Failed(exc))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    context = contextvars.copy_context()  # progress callbacks may need the caller's run context
    worker = threading.Thread(target=context.run, args=(produce,), name="hygge-extract", daemon=True)
    worker.start()
    try:
        while True:
            item = handoff.get()
            if item is _DONE:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item
    finally:
        stop.set()
        worker.join()
