"""Extraction on its own thread: order kept, errors surface in the writer, an early stop closes the
source, the worker never runs more than a couple of batches ahead, and the caller's context follows."""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Iterator

import pytest

from hygge.pipeline import prefetch


def test_items_arrive_in_order_from_another_thread() -> None:
    threads = set()

    def source() -> Iterator[int]:
        for i in range(1000):
            threads.add(threading.current_thread().name)
            yield i

    assert list(prefetch(source())) == list(range(1000))
    assert threads == {"hygge-extract"}


def test_a_source_error_is_raised_to_the_consumer() -> None:
    def source() -> Iterator[int]:
        yield 1
        raise ValueError("boom at the source")

    got = []
    with pytest.raises(ValueError, match="boom at the source"):
        for item in prefetch(source()):
            got.append(item)
    assert got == [1]


def test_an_early_stop_closes_the_source_and_ends_the_worker() -> None:
    closed = threading.Event()

    def source() -> Iterator[int]:
        try:
            yield from range(10_000)
        finally:
            closed.set()

    stream = prefetch(source())
    assert next(stream) == 0
    stream.close()
    assert closed.wait(5)
    assert not any(t.name == "hygge-extract" and t.is_alive() for t in threading.enumerate())


def test_the_worker_stays_at_most_depth_items_ahead() -> None:
    produced = []

    def source() -> Iterator[int]:
        for i in range(100):
            produced.append(i)
            yield i

    stream = prefetch(source(), depth=2)
    assert next(stream) == 0
    time.sleep(0.3)
    # one handed over, two queued, one in the worker's hand waiting for room
    assert len(produced) <= 4
    stream.close()


def test_the_callers_context_reaches_the_worker() -> None:
    run = contextvars.ContextVar("run", default="none")
    run.set("run-42")
    seen = []

    def source() -> Iterator[int]:
        seen.append(run.get())
        yield 1

    assert list(prefetch(source())) == [1]
    assert seen == ["run-42"]
