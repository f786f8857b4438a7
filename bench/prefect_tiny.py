"""Prefect's overhead per entity: the `land` flow over 1 tiny table and over 200, in one process.

    python bench/prefect_tiny.py PROJECT

Both timed runs use the same temporary Prefect API (started by a first, untimed run), so the
difference over 199 entities is what each extra entity costs: task run, state changes, logs,
concurrency slots and hygge's own work on a 100-row table. Prints one JSON line.
"""

from __future__ import annotations

import json
import sys
import time

from hygge.prefect.land import land


def timed(project: str, flow: str) -> float:
    began = time.perf_counter()
    land(project=project, flows=[flow], publish=False)
    return time.perf_counter() - began


def main() -> None:
    project = sys.argv[1]
    timed(project, "hygge_tiny1")  # starts the temporary API and warms imports
    one = timed(project, "hygge_tiny1")
    many = timed(project, "hygge_tiny200")
    report = {
        "one_s": round(one, 3),
        "many_s": round(many, 3),
        "per_entity_ms": round((many - one) / 199 * 1000, 1),
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
