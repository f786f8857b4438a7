"""The bad-input catalogue: one row per bad input a user can give hygge (configuration, source, store).

Each row either fails with the right error class, a message that names where (file, flow, entity,
field) and how to fix it (the part after "Try:"), with nothing new visible in the landing folder and no
new success in the journal; or, where the input is legitimate (an empty table, odd identifiers, an
injection attempt used as a name), it lands exactly and touches nothing else. docs/troubleshooting.md
lists every row; a test keeps the two in sync. Source rows use a real PostgreSQL (pg_db) or SQLite.
"""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from bad_inputs import (
    Outcome,
    attempt,
    journal_successes,
    password_role,
    pg_project,
    pg_tables,
    plain_project,
    sql,
    visible_files,
    write,
)
from helpers import landed

from hygge.errors import ConfigError, HyggeError, SourceError, StoreError

DOC = Path(__file__).resolve().parents[1] / "docs" / "troubleshooting.md"
T = dt.datetime(2024, 1, 1, 8, 0)


@dataclass(frozen=True)
class Case:
    id: str
    setup: Callable[[Path, str], dict[str, Any]]  # (project root, database url) -> attempt() arguments
    error: type[HyggeError] | None  # None: the input is legitimate and must land exactly
    says: tuple[str, ...] = ()  # the message names these (file, flow, entity, field, the cause)
    where: tuple[str, ...] = ()  # context parts the error must carry
    check: Callable[[Path, str, Outcome], None] | None = None  # extra assertions on the outcome
    pg: bool = False  # needs a fresh PostgreSQL database
    slow: bool = False  # takes more than a few seconds (marked slow: not in the default run)


CASES: list[Case] = []


def case(
    id: str,
    error: type[HyggeError] | None,
    *says: str,
    where: str = "",
    pg: bool = False,
    check=None,
    slow: bool = False,
):
    """Register the decorated setup as a catalogue row."""

    def register(setup: Callable[[Path, str], dict[str, Any]]) -> Callable[[Path, str], dict[str, Any]]:
        CASES.append(Case(id, setup, error, says, tuple(where.split()), check, pg, slow))
        return setup

    return register


def flow_yml(extra: str = "", entities: str = "[t]") -> str:
    return f"home: {{type: sql, connection: db}}\nstore: {{type: delta, path: lake}}\nentities: {entities}\n{extra}"


# === configuration: fails while loading, before anything is read or written ==============================


@case("yaml-syntax-hygge-yml", ConfigError, "hygge.yml", "invalid YAML at line", where="file")
def _(root, url):
    plain_project(root, hygge_text="name: p\nconnections:\n  db: {type: sqlite, path: x\n")
    return {}


@case("yaml-tab-indent-flow-yml", ConfigError, "flow.yml", "flow 'f'", "invalid YAML", where="file flow")
def _(root, url):
    plain_project(root, flow_text="home:\n\ttype: sql\n")
    return {}


@case("yaml-syntax-entity-file", ConfigError, "t.yml", "entity 't'", "invalid YAML", where="file flow entity")
def _(root, url):
    plain_project(root)
    write(root, "flows/f/entities/t.yml", "table: [unclosed\n")
    return {}


@case("yaml-not-a-mapping", ConfigError, "hygge.yml", "dictionary", where="file")
def _(root, url):
    plain_project(root, hygge_text="- name: p\n")
    return {}


@case("empty-hygge-yml", ConfigError, "hygge.yml", "field 'name'", "add `name:`", where="file field")
def _(root, url):
    plain_project(root, hygge_text="\n")
    return {}


@case(
    "unknown-key-hygge-yml",
    ConfigError,
    "unknown key 'conections'",
    "did you mean 'connections'",
    where="file field",
)
def _(root, url):
    plain_project(root, hygge_text="name: p\nconections: {}\n")
    return {}


@case(
    "unknown-key-flow-yml",
    ConfigError,
    "flow.yml",
    "flow 'f'",
    "'run_typ'",
    "run_type",
    where="file flow field",
)
def _(root, url):
    plain_project(root, flow_text=flow_yml("run_typ: incremental\n"))
    return {}


@case(
    "unknown-key-entity-file",
    ConfigError,
    "t.yml",
    "entity 't'",
    "'watermak'",
    "watermark",
    where="file entity field",
)
def _(root, url):
    plain_project(root)
    write(root, "flows/f/entities/t.yml", "watermak: {watermark_column: x}\n")
    return {}


@case(
    "unknown-key-connection",
    ConfigError,
    "connections.db.passwrd",
    "did you mean 'password'",
    where="file field",
)
def _(root, url):
    plain_project(
        root, hygge_text="name: p\nconnections:\n  db: {type: postgres, host: h, database: d, passwrd: x}\n"
    )
    return {}


@case("wrong-type-concurrency", ConfigError, "options.concurrency", "whole number", where="file field")
def _(root, url):
    plain_project(root, hygge_text="name: p\noptions: {concurrency: many}\n")
    return {}


@case(
    "wrong-type-batch-size",
    ConfigError,
    "flow.yml",
    "entity 't'",
    "home.batch_size",
    "whole number",
    where="file flow entity field",
)
def _(root, url):
    plain_project(
        root,
        flow_text="home: {type: sql, connection: db, batch_size: lots}\nstore: {type: delta, path: lake}\nentities: [t]\n",
    )
    return {}


@case("wrong-type-port", ConfigError, "connections.db.port", "whole number", where="file field")
def _(root, url):
    plain_project(
        root, hygge_text="name: p\nconnections:\n  db: {type: postgres, host: h, database: d, port: abc}\n"
    )
    return {}


@case(
    "out-of-range-concurrency",
    ConfigError,
    "options.concurrency",
    "greater than or equal to 1",
    where="file field",
)
def _(root, url):
    plain_project(root, hygge_text="name: p\noptions: {concurrency: 0}\n")
    return {}


@case("entities-not-a-list", ConfigError, "flow.yml", "field 'entities'", "list", where="file flow field")
def _(root, url):
    plain_project(root, flow_text=flow_yml(entities="t"))
    return {}


@case("primary-key-wrong-type", ConfigError, "flow.yml", "watermark.primary_key", where="file flow field")
def _(root, url):
    plain_project(root, flow_text=flow_yml("watermark: {primary_key: {id: 1}}\n"))
    return {}


@case(
    "missing-env-var-hygge-yml",
    ConfigError,
    "hygge.yml",
    "HYGGE_CATALOGUE_UNSET_PW",
    "connections.db.password",
    "export",
    where="file field",
)
def _(root, url):
    plain_project(
        root,
        hygge_text="name: p\nconnections:\n  db: {type: postgres, host: h, database: d, password: '${HYGGE_CATALOGUE_UNSET_PW}'}\n",
    )
    return {}


@case(
    "missing-env-var-flow-yml",
    ConfigError,
    "flow.yml",
    "flow 'f'",
    "HYGGE_CATALOGUE_UNSET_LAKE",
    "store.path",
    where="file flow field",
)
def _(root, url):
    plain_project(
        root,
        flow_text="home: {type: sql, connection: db}\nstore: {type: delta, path: '${HYGGE_CATALOGUE_UNSET_LAKE}/x'}\nentities: [t]\n",
    )
    return {}


@case(
    "run-type-misspelt",
    ConfigError,
    "flow.yml",
    "run_type",
    "'full_drop' or 'incremental'",
    where="file flow field",
)
def _(root, url):
    plain_project(root, flow_text=flow_yml("run_type: incrementall\n"))
    return {}


@case("conflicting-run-type-flags", ConfigError, "--incremental and --full-drop", "choose one", where="field")
def _(root, url):
    plain_project(root)
    return {"incremental": True, "full_drop": True}


@case(
    "incremental-without-watermark",
    ConfigError,
    "flow.yml",
    "entity 't'",
    "watermark.watermark_column",
    where="file flow entity field",
)
def _(root, url):
    plain_project(root, flow_text=flow_yml("run_type: incremental\n"))
    return {}


@case("table-and-query", ConfigError, "t.yml", "entity 't'", "`table` or `query`", where="file flow entity")
def _(root, url):
    plain_project(root)
    write(root, "flows/f/entities/t.yml", "table: a\nquery: SELECT 1\n")
    return {}


@case(
    "lookback-without-primary-key",
    ConfigError,
    "flow.yml",
    "lookback",
    "primary_key",
    where="file flow field",
)
def _(root, url):
    plain_project(root, flow_text=flow_yml("watermark: {watermark_column: u, lookback: 60}\n"))
    return {}


@case(
    "unknown-connection",
    ConfigError,
    "flow.yml",
    "entity 't'",
    "unknown connection 'dbb'",
    "did you mean 'db'",
    where="file flow entity field",
)
def _(root, url):
    plain_project(
        root,
        flow_text="home: {type: sql, connection: dbb}\nstore: {type: delta, path: lake}\nentities: [t]\n",
    )
    return {}


@case(
    "unknown-credential",
    ConfigError,
    "flow.yml",
    "unknown credential 'lake-key'",
    "credentials:",
    where="file flow entity field",
)
def _(root, url):
    plain_project(
        root,
        flow_text="home: {type: sql, connection: db}\nstore: {type: delta, path: lake, credential: lake-key}\nentities: [t]\n",
    )
    return {}


@case("connection-without-host", ConfigError, "hygge.yml", "connections.db", "host", where="file field")
def _(root, url):
    plain_project(root, hygge_text="name: p\nconnections:\n  db: {type: postgres, database: d}\n")
    return {}


@case(
    "service-principal-without-secret",
    ConfigError,
    "hygge.yml",
    "client_secret",
    "`client_secret:`",
    where="file field",
)
def _(root, url):
    plain_project(
        root,
        hygge_text="name: p\ncredentials:\n  sp: {type: service_principal, tenant_id: t, client_id: c}\n",
    )
    return {}


@case("unknown-home-type", ConfigError, "flow.yml", "home.type", "'sql'", where="file flow field")
def _(root, url):
    plain_project(
        root, flow_text="home: {type: excel, path: x}\nstore: {type: delta, path: lake}\nentities: [t]\n"
    )
    return {}


@case("unknown-store-type", ConfigError, "flow.yml", "store.type", "'delta'", where="file flow field")
def _(root, url):
    plain_project(
        root,
        flow_text="home: {type: sql, connection: db}\nstore: {type: deltalake, path: lake}\nentities: [t]\n",
    )
    return {}


@case(
    "block-reference-malformed", ConfigError, "flow.yml", "flow 'f'", "<type>/<name>", where="file flow field"
)
def _(root, url):
    plain_project(
        root, flow_text="home: {type: sql, connection: db}\nstore: {block: my-lake}\nentities: [t]\n"
    )
    return {}


@case(
    "unknown-block-type",
    ConfigError,
    "flow.yml",
    "unknown block type 'delta-zone'",
    "did you mean",
    where="file flow field",
)
def _(root, url):
    plain_project(
        root, flow_text="home: {type: sql, connection: db}\nstore: {block: delta-zone/dev}\nentities: [t]\n"
    )
    return {}


@case(
    "unknown-flow-selected", ConfigError, "hygge.yml", "no flow named 'ff'", "did you mean 'f'", where="file"
)
def _(root, url):
    plain_project(root)
    return {"flows": ["ff"]}


@case(
    "unknown-entity-selected",
    ConfigError,
    "hygge.yml",
    "no entity 'f.tt'",
    "did you mean 'f.t'",
    where="file",
)
def _(root, url):
    plain_project(root)
    return {"entities": ["f.tt"]}


@case("var-without-flow-prefix", ConfigError, "--var 'run_type'", "flow.<flow>.<key>=value", where="file")
def _(root, url):
    plain_project(root)
    return {"variables": ["run_type=full_drop"]}


@case("var-unknown-flow", ConfigError, "--var names flow 'g'", "one of: f", where="file")
def _(root, url):
    plain_project(root)
    return {"variables": ["flow.g.run_type=full_drop"]}


@case("entity-name-escapes-store", ConfigError, "flow.yml", "'../escape'", "name", where="file flow entity")
def _(root, url):
    plain_project(root, flow_text=flow_yml(entities="['../escape']"))
    return {}


@case("entity-name-hidden", ConfigError, "flow.yml", "'_staging'", "table:", where="file flow entity")
def _(root, url):
    plain_project(root, flow_text=flow_yml(entities="[_staging]"))
    return {}


# === sources: fail at run time naming flow and entity, or land exactly ==================================


def simple_table(url: str, name: str = "t", rows: int = 3) -> None:
    sql(
        url,
        f'CREATE TABLE "{name}" (id int PRIMARY KEY, v text, updated_at timestamp)',
        (
            f'INSERT INTO "{name}" VALUES (%s, %s, %s)',
            [(i, f"v{i}", T + dt.timedelta(minutes=i)) for i in range(rows)],
        ),
    )


@case(
    "missing-table",
    SourceError,
    "flow 'f'",
    "entity 't'",
    "table t was not found",
    "`table:`",
    where="flow entity field",
    pg=True,
)
def _(root, url):
    pg_project(root, url)
    return {}


@case(
    "missing-primary-key-column",
    ConfigError,
    "entity 't'",
    "primary key column 'idd'",
    "use one of: id, v, updated_at",
    where="file flow entity field",
    pg=True,
)
def _(root, url):
    simple_table(url)
    pg_project(root, url, {"watermark": {"primary_key": ["idd"]}})
    return {}


@case(
    "missing-watermark-column",
    ConfigError,
    "entity 't'",
    "watermark column 'updated'",
    "use one of",
    where="file flow entity field",
    pg=True,
)
def _(root, url):
    simple_table(url)
    pg_project(root, url, {"run_type": "incremental", "watermark": {"watermark_column": "updated"}})
    return {}


@case(
    "columns-names-missing-column",
    SourceError,
    "entity 't'",
    "columns.amount",
    "use one of",
    where="flow entity field",
    pg=True,
)
def _(root, url):
    simple_table(url)
    pg_project(root, url, {"defaults": {"columns": {"amount": "decimal(18,2)"}}})
    return {}


@case(
    "columns-bad-type",
    ConfigError,
    "flow.yml",
    "entity 't'",
    "field 'columns'",
    "column 'v'",
    "decimal(38,18)",
    where="file flow entity field",
    pg=True,
)
def _(root, url):
    simple_table(url)
    pg_project(root, url, {"defaults": {"columns": {"v": "decimal(99,2)x"}}})
    return {}


@case(
    "unsupported-type-range",
    SourceError,
    "entity 't'",
    "column 'r'",
    "int4range",
    "CAST",
    where="flow entity field",
    pg=True,
)
def _(root, url):
    sql(url, "CREATE TABLE t (id int, r int4range)", "INSERT INTO t VALUES (1, '[1,5)')")
    pg_project(root, url)
    return {}


def _interval_as_text(root, url, out):
    lands("t", ["id", "span"], 1)(root, url, out)
    data = landed(root, "f", "t")
    assert data.schema.field("span").type == pa.string() and data.column("span")[0].as_py() == "1 day"


@case("interval-lands-as-text", None, pg=True, check=_interval_as_text)
def _(root, url):
    sql(url, "CREATE TABLE t (id int, span interval)", "INSERT INTO t VALUES (1, '1 day')")
    pg_project(root, url)
    return {}


@case(
    "unsupported-type-point",
    SourceError,
    "entity 't'",
    "column 'p'",
    "point",
    "CAST",
    where="flow entity field",
    pg=True,
)
def _(root, url):
    sql(url, "CREATE TABLE t (id int, p point)", "INSERT INTO t VALUES (1, '(1,2)')")
    pg_project(root, url)
    return {}


@case(
    "watermark-wrong-type",
    ConfigError,
    "entity 't'",
    "watermark column 'flag'",
    "cannot be a watermark",
    where="flow entity field",
    pg=True,
)
def _(root, url):
    sql(url, "CREATE TABLE t (id int, flag boolean)", "INSERT INTO t VALUES (1, true)")
    pg_project(root, url, {"run_type": "incremental", "watermark": {"watermark_column": "flag"}})
    return {}


@case(
    "query-syntax-error",
    SourceError,
    "t.yml",
    "entity 't'",
    "syntax error",
    "`query:`",
    where="file flow entity",
    pg=True,
)
def _(root, url):
    pg_project(root, url)
    write(root, "flows/f/entities/t.yml", "query: SELEC 1\n")
    return {}


def _not_transient(root: Path, url: str, out: Outcome) -> None:
    assert out.error is not None and not out.error.transient, "a wrong password cannot heal by retrying"
    assert "wrong-one" not in str(out.error)


def _transient(root: Path, url: str, out: Outcome) -> None:
    assert out.error is not None and out.error.transient, "a refused connection may heal: retry it"


@case(
    "wrong-password",
    SourceError,
    "entity 't'",
    "authentication failed",
    "password",
    where="flow entity",
    pg=True,
    check=_not_transient,
    slow=True,  # connectorx reports a refused login only after its 30 s connect time-out
)
def _(root, url):
    template = password_role(url, "hygge_catalogue_user", "right-one")
    simple_table(url)
    pg_project(root, template.format(password="wrong-one", database=url.rsplit("/", 1)[1]))
    return {}


@case(
    "unreachable-database",
    SourceError,
    "entity 't'",
    "could not be reached",
    where="flow entity",
    check=_transient,
    slow=True,  # connectorx gives up on a refused connection only after its 30 s connect time-out
)
def _(root, url):
    pg_project(root, "postgresql://u:p@127.0.0.1:9/none")
    return {}


@case(
    "sqlite-mixed-type-watermark",
    SourceError,
    "entity 't'",
    "column 'n' holds a Text value",
    "CAST",
    where="flow entity",
)
def _(root, url):
    with sqlite3.connect(root / "src.sqlite") as db:
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER)")
        db.executemany("INSERT INTO t VALUES (?, ?)", [(1, 1), (2, "two"), (3, 3)])
    plain_project(root, flow_text=flow_yml("run_type: incremental\nwatermark: {watermark_column: n}\n"))
    return {}


# --- legitimate inputs that look bad: they land exactly ----------------------------------------------


def lands(
    table: str, columns: list[str], rows: int, *, victim: bool = False
) -> Callable[[Path, str, Outcome], None]:
    """Check: the entity succeeded, landed `rows` rows with exactly these column names."""

    def check(root: Path, url: str, out: Outcome) -> None:
        assert out.error is None, str(out.error)
        data = landed(root, "f", out.results[0].entity)
        assert data.num_rows == rows and data.column_names == columns
        assert journal_successes(root) >= 1
        if victim:
            assert "victim" in pg_tables(url), "an injected statement ran"

    return check


def victim(url: str) -> None:
    sql(url, "CREATE TABLE victim (id int)", "INSERT INTO victim VALUES (1)")


def _empty_full(root, url, out):
    lands("t", ["id", "v", "updated_at"], 0)(root, url, out)
    assert landed(root, "f", "t").schema.field("updated_at").type == pa.timestamp("us")


@case("empty-table-full-drop", None, pg=True, check=_empty_full)
def _(root, url):
    sql(url, "CREATE TABLE t (id int PRIMARY KEY, v text, updated_at timestamp)")
    pg_project(root, url)
    return {}


def _empty_then_rows(root, url, out):
    assert out.error is None and out.results[0].rows == 0, str(out.error)
    simple_table_rows(url, 2)
    second = attempt(root)
    assert second.error is None and second.results[0].rows == 2
    assert landed(root, "f", "t").num_rows == 2


def simple_table_rows(url: str, n: int) -> None:
    sql(
        url,
        ("INSERT INTO t VALUES (%s, %s, %s)", [(i, f"v{i}", T + dt.timedelta(minutes=i)) for i in range(n)]),
    )


@case("empty-table-incremental", None, pg=True, check=_empty_then_rows)
def _(root, url):
    sql(url, "CREATE TABLE t (id int PRIMARY KEY, v text, updated_at timestamp)")
    pg_project(
        root,
        url,
        {"run_type": "incremental", "watermark": {"primary_key": ["id"], "watermark_column": "updated_at"}},
    )
    return {}


def _zero_increment(root, url, out):
    assert out.error is None and out.results[0].rows == 0, str(out.error)
    assert out.results[0].watermark_after == out.results[0].watermark_before is not None
    assert landed(root, "f", "t").num_rows == 3


@case("zero-row-increment", None, pg=True, check=_zero_increment)
def _(root, url):
    simple_table(url)
    pg_project(root, url, {"run_type": "incremental", "watermark": {"watermark_column": "updated_at"}})
    assert attempt(root).error is None
    return {}


def _null_marks(rows: int) -> Callable[[Path, str, Outcome], None]:
    def check(root: Path, url: str, out: Outcome) -> None:
        assert out.error is None, str(out.error)
        again = attempt(root)  # a rerun must neither lose nor double a row
        assert again.error is None, str(again.error)
        assert landed(root, "f", "t").num_rows == rows

    return check


@case("null-watermarks-with-key", None, pg=True, check=_null_marks(3))
def _(root, url):
    sql(
        url,
        "CREATE TABLE t (id int PRIMARY KEY, u timestamp)",
        "INSERT INTO t VALUES (1, NULL), (2, NULL), (3, NULL)",
    )
    pg_project(
        root, url, {"run_type": "incremental", "watermark": {"primary_key": ["id"], "watermark_column": "u"}}
    )
    return {}


@case("null-watermarks-without-key", None, pg=True, check=_null_marks(3))
def _(root, url):
    sql(url, "CREATE TABLE t (id int, u timestamp)", "INSERT INTO t VALUES (1, NULL), (2, NULL), (3, NULL)")
    pg_project(root, url, {"run_type": "incremental", "watermark": {"watermark_column": "u"}})
    return {}


@case("some-null-watermarks", None, pg=True, check=_null_marks(4))
def _(root, url):
    sql(url, "CREATE TABLE t (id int, u int)", "INSERT INTO t VALUES (1, NULL), (2, 5), (3, NULL), (4, 7)")
    pg_project(root, url, {"run_type": "incremental", "watermark": {"watermark_column": "u"}})
    return {}


ODD = {
    "spaces": ("order lines", ["line id", "unit price"]),
    "brackets": ("[weird]", ["a]b", "[c"]),
    "quotes": ('it\'s "q"', ['say "hi"', "o'clock"]),
    "unicode": ("Ærøskøbing_日本", ["prís €", "日付"]),
}


def _odd_setup(kind: str) -> Callable[[Path, str], dict[str, Any]]:
    table, columns = ODD[kind]

    def setup(root: Path, url: str) -> dict[str, Any]:
        q = [c.replace('"', '""') for c in columns]
        t = table.replace('"', '""')
        sql(
            url,
            f'CREATE TABLE "{t}" ("{q[0]}" int, "{q[1]}" text)',
            (f'INSERT INTO "{t}" VALUES (%s, %s)', [(1, "a"), (2, "b")]),
        )
        pg_project(
            root,
            url,
            {
                "run_type": "incremental",
                "watermark": {"primary_key": [columns[0]], "watermark_column": columns[0]},
            },
            entities=[{"name": "odd", "table": table}],
        )
        return {}

    return setup


for _kind in ODD:
    CASES.append(
        Case(f"identifier-{_kind}", _odd_setup(_kind), None, check=lands("odd", ODD[_kind][1], 2), pg=True)
    )


def _injection_table(root, url, out):
    lands("x", ["id"], 1, victim=True)(root, url, out)


@case("injection-as-table-name", None, pg=True, check=_injection_table)
def _(root, url):
    victim(url)
    sql(
        url,
        'CREATE TABLE "x""; DROP TABLE victim; --" (id int)',
        'INSERT INTO "x""; DROP TABLE victim; --" VALUES (1)',
    )
    pg_project(root, url, entities=[{"name": "x", "table": 'x"; DROP TABLE victim; --'}])
    return {}


def _injection_column(root, url, out):
    lands("t", ['a"; DROP TABLE victim; --'], 2, victim=True)(root, url, out)
    sql(url, """INSERT INTO t VALUES (3)""")
    again = attempt(root)  # the watermark predicate quotes the column too
    assert again.error is None and again.results[0].rows == 1, str(again.error)
    assert "victim" in pg_tables(url)


@case("injection-as-column-name", None, pg=True, check=_injection_column)
def _(root, url):
    victim(url)
    sql(url, 'CREATE TABLE t ("a""; DROP TABLE victim; --" int)', "INSERT INTO t VALUES (1), (2)")
    pg_project(
        root, url, {"run_type": "incremental", "watermark": {"watermark_column": 'a"; DROP TABLE victim; --'}}
    )
    return {}


def _victim_intact(root, url, out):
    assert "victim" in pg_tables(url), "an injected statement ran"


@case(
    "injection-in-missing-table-name",
    SourceError,
    "was not found",
    "`table:`",
    where="flow entity field",
    pg=True,
    check=_victim_intact,
)
def _(root, url):
    victim(url)
    pg_project(root, url, entities=[{"name": "x", "table": "victim'; DROP TABLE victim; --"}])
    return {}


@case(
    "injection-in-schema",
    SourceError,
    "was not found",
    "`schema:`",
    where="flow entity field",
    pg=True,
    check=_victim_intact,
)
def _(root, url):
    victim(url)
    pg_project(
        root,
        url,
        {"home": {"type": "sql", "connection": "db", "schema": "public'; DROP TABLE victim; --"}},
        entities=["victim"],
    )
    return {}


@case(
    "injection-in-watermark-column",
    ConfigError,
    "is not in the source",
    "use one of",
    where="flow entity field",
    pg=True,
    check=_victim_intact,
)
def _(root, url):
    victim(url)
    pg_project(
        root,
        url,
        {
            "run_type": "incremental",
            "watermark": {"watermark_column": 'id" FROM victim; DROP TABLE victim; --'},
        },
        entities=["victim"],
    )
    return {}


# === stores ============================================================================================


@case("store-path-is-a-file", StoreError, "flow 'f'", "entity 't'", "lake", where="flow entity", pg=True)
def _(root, url):
    simple_table(url)
    pg_project(root, url)
    write(root, "lake", "not a folder")
    return {}


@case("store-path-unwritable", StoreError, "flow 'f'", "entity 't'", "/proc/", where="flow entity", pg=True)
def _(root, url):
    simple_table(url)
    pg_project(root, url, store={"type": "parquet", "path": "/proc/hygge-catalogue/lake"})
    return {}


@case(
    "journal-path-unwritable",
    StoreError,  # the entity's lease, in the journal folder, is the first thing written there
    "flow 'f'",
    "entity 't'",
    "/proc/hygge-catalogue/journal failed",
    where="flow entity",
    pg=True,
)
def _(root, url):
    simple_table(url)
    pg_project(
        root,
        url,
        {"run_type": "incremental", "watermark": {"watermark_column": "updated_at"}},
        extra={"journal": {"path": "/proc/hygge-catalogue/journal"}},
    )
    return {}


def om_project(root: Path, url: str, keys: list[str], **store: Any) -> None:
    pg_project(
        root,
        url,
        {"run_type": "incremental", "watermark": {"primary_key": keys, "watermark_column": "updated_at"}},
        store={"type": "open_mirroring", "path": "zone", **store},
    )


@case(
    "changed-key-columns",
    StoreError,
    "entity 't'",
    "key columns",
    "--full-drop",
    where="flow entity field",
    pg=True,
)
def _(root, url):
    simple_table(url)
    om_project(root, url, ["id"])
    assert attempt(root).error is None
    om_project(root, url, ["id", "v"])
    return {}


@case(
    "type-change-open-mirroring",
    StoreError,
    "entity 't'",
    "column 'v' changed type",
    "schema_change: full_drop",
    where="flow entity field",
    pg=True,
)
def _(root, url):
    simple_table(url)
    om_project(root, url, ["id"])
    assert attempt(root).error is None
    sql(
        url,
        "ALTER TABLE t ALTER COLUMN v TYPE int USING id",
        "UPDATE t SET updated_at = updated_at + interval '1 day'",
    )
    return {}


def _type_change(store: str, change: str) -> Callable[[Path, str], dict[str, Any]]:
    def setup(root: Path, url: str) -> dict[str, Any]:
        simple_table(url)
        pg_project(
            root,
            url,
            {"run_type": "incremental", "watermark": {"watermark_column": "updated_at"}},
            store={"type": store, "path": "lake"},
        )
        assert attempt(root).error is None
        sql(url, change, "INSERT INTO t (id, updated_at) VALUES (100, '2030-01-01')")
        return {}

    return setup


for _store in ("delta", "parquet"):
    CASES.append(
        Case(
            f"type-change-{_store}",
            _type_change(_store, "ALTER TABLE t ALTER COLUMN v TYPE int USING id"),
            StoreError,
            ("entity 't'", "'v'", "--full-drop"),
            ("flow", "entity"),
            pg=True,
        )
    )
    CASES.append(
        Case(
            f"column-dropped-{_store}",
            _type_change(_store, "ALTER TABLE t DROP COLUMN v"),
            StoreError,
            ("entity 't'", "'v'", "--full-drop"),
            ("flow", "entity"),
            pg=True,
        )
    )


def _rebuilt(root, url, out):
    assert out.error is None, str(out.error)
    data = landed(root, "f", "t")
    assert data.num_rows == 4 and data.schema.field("v").type == pa.int32()


@case("type-change-with-full-drop", None, pg=True, check=_rebuilt)
def _(root, url):
    _type_change("delta", "ALTER TABLE t ALTER COLUMN v TYPE int USING id")(root, url)
    return {"full_drop": True}


# === the runner ==========================================================================================


@pytest.mark.parametrize(
    "c", [pytest.param(c, id=c.id, marks=[pytest.mark.slow] if c.slow else []) for c in CASES]
)
def test_bad_input(c: Case, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """Run one catalogue row the way `hygge go` would and check error, message and landing zone."""
    url = request.getfixturevalue("pg_db") if c.pg else ""
    request.getfixturevalue("monkeypatch").setenv("HYGGE_TASK_RETRIES", "0")  # the error, not its retries
    root = tmp_path / "project"
    root.mkdir()
    args = c.setup(root, url)
    before, successes = visible_files(root), journal_successes(root)
    out = attempt(root, **args)
    if c.error is None:
        assert c.check is not None
        c.check(root, url, out)
        return
    error = out.error
    assert error is not None, f"{c.id}: expected {c.error.__name__}, the run succeeded"
    assert isinstance(error, c.error), f"{c.id}: {type(error).__name__}: {error}"
    text = str(error)
    if os.environ.get("HYGGE_SHOW_MESSAGES"):
        print(f"\n{c.id} | {type(error).__name__} | {text.replace(str(root), '<root>')}")
    for part in c.says:
        assert part in text, f"{c.id}: {part!r} not in: {text}"
    assert error.hint and "Try: " in text, f"{c.id}: no fix in: {text}"
    for part in c.where:
        assert getattr(error.context, part), f"{c.id}: no {part} in: {text}"
    if error.context.file:
        assert Path(error.context.file).name in text
    assert "Traceback" not in text and "RetryError" not in text
    assert visible_files(root) == before, f"{c.id}: something became visible"
    assert journal_successes(root) == successes, f"{c.id}: a success was journaled"
    if c.check is not None:
        c.check(root, url, out)


def test_catalogue_is_large_enough_and_documented() -> None:
    """At least 40 rows, and docs/troubleshooting.md names every one."""
    ids = [c.id for c in CASES]
    assert len(ids) >= 40 and len(set(ids)) == len(ids)
    doc = DOC.read_text(encoding="utf-8")
    missing = [i for i in ids if f"`{i}`" not in doc]
    assert not missing, f"not in {DOC.name}: {missing}"
