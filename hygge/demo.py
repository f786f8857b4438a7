"""The embedded demo: a SQLite shop (customers, orders, order lines; ≥ 1M rows) built in seconds."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

from hygge.config.loader import PROJECT_FILE, find_project_root

DEMO_DIR_VARIABLE = "HYGGE_DEMO_DIR"

_SCHEMA = """
CREATE TABLE customers (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT, country TEXT,
    credit_limit DECIMAL(12,2), created_at DATETIME NOT NULL, updated_at DATETIME NOT NULL
);
CREATE TABLE orders (
    id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL REFERENCES customers(id),
    ordered_at DATETIME NOT NULL, status TEXT NOT NULL, total DECIMAL(12,2), updated_at DATETIME NOT NULL
);
CREATE TABLE order_lines (
    id INTEGER PRIMARY KEY, order_id INTEGER NOT NULL REFERENCES orders(id), sku TEXT NOT NULL,
    quantity INTEGER NOT NULL, unit_price DECIMAL(10,2) NOT NULL, updated_at DATETIME NOT NULL
);
CREATE INDEX orders_updated ON orders(updated_at);
CREATE INDEX lines_updated ON order_lines(updated_at);
CREATE INDEX customers_updated ON customers(updated_at);
"""

# Rows come from a recursive counter, so the whole shop is generated inside SQLite in one pass each.
_FILL = """
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {count})
INSERT INTO {table} SELECT {columns} FROM n;
"""

_COUNTER_TIME = "strftime('%Y-%m-%d %H:%M:%f', '2024-01-01', '+' || (i * {step}) || ' seconds')"


def demo_project_root() -> Path:
    """The project that holds the demo flows (this checkout's hygge.yml)."""
    return find_project_root(Path.cwd())


def build_demo(directory: Path, *, customers: int = 100_000, say: Callable[[str], None] = print) -> Path:
    """Create (or recreate) the demo database under `directory`; returns the demo project's root."""
    root = demo_project_root()
    directory = directory if directory.is_absolute() else root / directory
    directory.mkdir(parents=True, exist_ok=True)
    os.environ[DEMO_DIR_VARIABLE] = str(directory.resolve())
    database = directory / "shop.sqlite"
    for stale in (database, directory / "lake"):
        if stale.is_file():
            stale.unlink()
        elif stale.is_dir():
            import shutil

            shutil.rmtree(stale)
    orders, lines = customers * 4, customers * 6
    with sqlite3.connect(database) as db:
        db.executescript(_SCHEMA)
        db.executescript(
            _FILL.format(
                count=customers,
                table="customers",
                columns="i, 'customer ' || i, 'c' || i || '@example.com', "
                "substr('SEDKNOFIDEUSGB', 1 + (i % 7) * 2, 2), (i % 500) * 100.25, "
                + _COUNTER_TIME.format(step=60)
                + ", "
                + _COUNTER_TIME.format(step=60),
            )
        )
        db.executescript(
            _FILL.format(
                count=orders,
                table="orders",
                columns=f"i, 1 + (i * 7919) % {customers}, "
                + _COUNTER_TIME.format(step=15)
                + ", CASE i % 4 WHEN 0 THEN 'new' WHEN 1 THEN 'paid' WHEN 2 THEN 'shipped' ELSE 'closed' END, "
                "round((i % 1000) * 1.37, 2), " + _COUNTER_TIME.format(step=15),
            )
        )
        db.executescript(
            _FILL.format(
                count=lines,
                table="order_lines",
                columns=f"i, 1 + (i * 104729) % {orders}, 'SKU-' || (i % 5000), 1 + i % 5, "
                "round((i % 300) * 0.99 + 1, 2), " + _COUNTER_TIME.format(step=10),
            )
        )
    say(
        f"Built {database} with {customers:,} customers, {orders:,} orders, {lines:,} order lines "
        f"({customers + orders + lines:,} rows)"
    )
    return root


def change_demo(root: Path) -> str:
    """Insert and update some rows, including one whose updated_at equals the current maximum."""
    directory = Path(os.environ.get(DEMO_DIR_VARIABLE, root / ".hygge_demo"))
    with sqlite3.connect(directory / "shop.sqlite") as db:
        top_order = db.execute("SELECT max(id) FROM orders").fetchone()[0]
        top_line = db.execute("SELECT max(id) FROM order_lines").fetchone()[0]
        tie = db.execute("SELECT max(updated_at) FROM orders").fetchone()[0]
        now = "strftime('%Y-%m-%d %H:%M:%f', 'now')"
        db.execute(
            f"INSERT INTO orders SELECT id + {top_order}, customer_id, {now}, 'new', total, {now} "
            "FROM orders WHERE id <= 1000"
        )
        db.execute("INSERT INTO orders VALUES (?, 1, ?, 'new', 9.99, ?)", (top_order + 1001, tie, tie))
        db.execute(
            f"INSERT INTO order_lines SELECT id + {top_line}, order_id + {top_order}, sku, quantity, "
            f"unit_price, {now} FROM order_lines WHERE order_id <= 1000"
        )
        added_lines = db.execute("SELECT changes()").fetchone()[0]
        db.execute(
            f"UPDATE customers SET credit_limit = credit_limit + 1, updated_at = {now} WHERE id % 200 = 0"
        )
        updated = db.execute("SELECT changes()").fetchone()[0]
    return (
        f"Changed the shop: 1,001 new orders (one with updated_at equal to the previous maximum {tie}), "
        f"{added_lines:,} new order lines, {updated:,} customers updated."
    )


__all__ = ["PROJECT_FILE", "build_demo", "change_demo"]
