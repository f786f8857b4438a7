"""The embedded demo: a project (package data under hygge/templates/demo) and a SQLite shop
(customers, orders, order lines; ≥ 1M rows) built in seconds, in any folder."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Callable
from importlib import resources
from pathlib import Path

from hygge.config.loader import PROJECT_FILE
from hygge.errors import ConfigError

# The first line of the demo's hygge.yml: how a folder is recognised as an earlier demo to replace.
DEMO_MARK = "# The hygge demo project, written by `hygge demo`"
MIRROR_ITEM = Path("lake/Shop.MountedRelationalDatabase")  # holds Files/LandingZone, Files/Monitoring, Tables

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


def write_demo_project(directory: Path) -> Path:
    """Write the demo project into `directory` (new, empty, or an earlier demo, whose shop and lake are
    replaced); returns its resolved root. Anything else in the way is refused, never overwritten."""
    root = directory.resolve()
    project_file = root / PROJECT_FILE
    if project_file.is_file():
        if not project_file.read_text(encoding="utf-8", errors="replace").startswith(DEMO_MARK):
            raise ConfigError(
                "this hygge.yml belongs to another project, not an earlier demo",
                hint="give `hygge demo` a new or empty folder, e.g. `hygge demo hygge-demo`",
                file=str(project_file),
            )
    elif root.is_dir() and any(root.iterdir()):
        raise ConfigError(
            "the folder is not empty and holds no earlier demo",
            hint="give `hygge demo` a new or empty folder, e.g. `hygge demo hygge-demo`",
            file=str(root),
        )
    # An installed package is a folder on disk, so this is the templates' own path (no extraction).
    with resources.as_file(resources.files("hygge") / "templates" / "demo") as templates:
        shutil.copytree(templates, root, dirs_exist_ok=True)
    return root


def build_demo(directory: Path, *, customers: int = 100_000, say: Callable[[str], None] = print) -> Path:
    """Create (or recreate) the shop database `directory`/shop.sqlite and clear `directory`/lake."""
    directory.mkdir(parents=True, exist_ok=True)
    database = directory / "shop.sqlite"
    database.unlink(missing_ok=True)
    shutil.rmtree(directory / "lake", ignore_errors=True)
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
    return database


def change_demo(directory: Path) -> str:
    """Insert and update some rows of `directory`/shop.sqlite, one of them with updated_at equal to
    the current maximum (the watermark's tie case)."""
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


__all__ = ["MIRROR_ITEM", "build_demo", "change_demo", "write_demo_project"]
