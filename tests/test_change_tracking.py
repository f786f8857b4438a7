"""SQL Server Change Tracking as a change feed (hygge/changes/mssql_ct.py), without a SQL Server.

Every statement the feed sends is parsed back with sqlglot's T-SQL grammar (taught CHANGETABLE and
the SNAPSHOT level, see tests/fake_mssql.py) and checked by structure: the upper bound is read before
the changes, CHANGETABLE starts at the journaled version, SYS_CHANGE_VERSION is bounded by the window's
end, the join covers every key, the select list is the pinned one, and the isolation statement is sent
through mssql-python only. Behaviour runs through the same code against a FAKE engine that models
SQL Server's documented Change Tracking behaviour (expiry, NULL for an untracked table, net changes).
tests/test_change_tracking_live.py runs against a real server when HYGGE_TEST_MSSQL_URL is set.
"""

from __future__ import annotations

import pyarrow as pa
import pytest
from sqlglot import exp

from hygge.changes.feed import FeedChanges, FeedWindow
from hygge.changes.feed_for import feed_for
from hygge.changes.mssql_ct import ChangeTrackingFeed
from hygge.config.models import ConnectionConfig, ResolvedEntity
from hygge.errors import ConfigError, SourceError
from hygge.homes.sql.home import SqlHome
from hygge.typemap import Mapped
from tests.fake_mssql import FakeChangeTracking, named_table, output_name, parse_tsql, table_name

SECRET = "s3cr]et'pa55-never-printed"
ODD_SCHEMA = "sa]les ünï"
ODD_TABLE = "or]ders 名前 x"
ODD_KEYS = ["order id]", "líne"]
ODD_COLUMNS = [
    Mapped("order id]", pa.int32()),
    Mapped("líne", pa.string(), "guid"),  # a uniqueidentifier key: lower-case text from either driver
    Mapped("amount ]x", pa.decimal128(38, 18), "text"),
    Mapped("note 名", pa.string()),
]
PLAIN_COLUMNS = [Mapped("id", pa.int32()), Mapped("name", pa.string()), Mapped("qty", pa.int16())]
DRIVER_TYPES = {"id": pa.int64(), "name": pa.string(), "qty": pa.int64()}  # connectorx: ints as int64


def make_feed(
    engine: str = "connectorx",
    *,
    schema: str | None = "dbo",
    table: str = "orders",
    columns: list[Mapped] = PLAIN_COLUMNS,
    keys: list[str] | None = None,
) -> tuple[ChangeTrackingFeed, FakeChangeTracking]:
    keys = keys or ["id"]
    settings = {"engine": "mssql-python"} if engine == "mssql-python" else {}
    conn = ConnectionConfig(
        type="mssql", host="erp.invalid", database="erp", user="hygge", password=SECRET, **settings
    )
    home_config = {"type": "sql", "connection": "erp", **({"schema": schema} if schema else {})}
    entity = ResolvedEntity.model_validate(
        {
            "flow": "f",
            "name": "orders",
            "table": table,
            "home": home_config,
            "store": {"type": "parquet", "path": "lake"},
            "run_type": "incremental",
            "watermark": {"primary_key": keys},
            "feed": {"type": "change_tracking"},
            "file": "flow.yml",
        }
    )
    home = SqlHome(entity, conn)
    fake = FakeChangeTracking(
        engine=engine, schema=schema, table=table, keys=tuple(keys), driver_types=DRIVER_TYPES
    )
    home.engine = fake
    home._columns = columns  # pinned without a catalog query
    feed = feed_for(entity, home)
    assert isinstance(feed, ChangeTrackingFeed)
    return feed, fake


def apply(store: dict[tuple, dict], changes: FeedChanges, keys: list[str]) -> None:
    """What a store does with a window: upserts first (streamed), then the gathered deletes."""
    for row in changes.upserts.read_all().to_pylist():
        store[tuple(row[k] for k in keys)] = row
    for row in changes.deletes.to_pylist():
        store.pop(tuple(row[k] for k in keys), None)


def source_rows(fake: FakeChangeTracking) -> dict[tuple, dict]:
    return {key: dict(row) for key, row in fake.rows.items()}


def the_select(sql: str) -> exp.Select:
    *_, select = parse_tsql(sql)
    assert isinstance(select, exp.Select)
    return select


# --- the statements, by structure ------------------------------------------------------------------


def test_open_reads_both_versions_in_one_statement_naming_the_exact_table() -> None:
    feed, fake = make_feed(schema=ODD_SCHEMA, table=ODD_TABLE, columns=ODD_COLUMNS, keys=ODD_KEYS)
    fake.insert(**{"order id]": 1, "líne": "a"})
    window = feed.open("0")
    [sql] = fake.statements
    [select] = parse_tsql(sql)
    items = {output_name(item): item for item in select.expressions}
    current = items["current_version"].this
    assert isinstance(current, exp.Cast) and current.this.name.upper() == "CHANGE_TRACKING_CURRENT_VERSION"
    min_valid = items["min_valid_version"].this
    assert min_valid.name.upper() == "CHANGE_TRACKING_MIN_VALID_VERSION"
    [object_id] = min_valid.find_all(exp.ObjectId)
    assert named_table(object_id.this.this) == (ODD_SCHEMA, ODD_TABLE)
    keys_asked = {lit.this for node in select.find_all(exp.In) for lit in node.expressions}
    assert keys_asked == set(ODD_KEYS)
    assert window == FeedWindow("0", "1")


@pytest.mark.parametrize("engine", ["connectorx", "mssql-python"])
def test_changes_statement_structure_with_odd_identifiers(engine: str) -> None:
    feed, fake = make_feed(engine, schema=ODD_SCHEMA, table=ODD_TABLE, columns=ODD_COLUMNS, keys=ODD_KEYS)
    fake.version = 42
    window = feed.open("17")
    assert window == FeedWindow("17", "42")
    select = the_select(feed.changes_sql(window))

    source = select.args["from_"].this
    changetable = source.this
    assert isinstance(changetable, exp.Anonymous) and changetable.name.upper() == "CHANGETABLE"
    changes_word, table, start = changetable.expressions
    assert changes_word.name == "CHANGES"
    assert table_name(table) == (ODD_SCHEMA, ODD_TABLE)
    assert isinstance(start, exp.Literal) and start.this == "17"  # the journaled version
    c = source.alias

    [join] = select.args["joins"]
    assert join.side == "LEFT" and table_name(join.this) == (ODD_SCHEMA, ODD_TABLE)
    t = join.this.alias
    condition = join.args["on"]
    pairs = {
        ((eq.this.table, eq.this.name), (eq.expression.table, eq.expression.name))
        for eq in condition.find_all(exp.EQ)
    }
    assert pairs == {((t, k), (c, k)) for k in ODD_KEYS}  # every key column, nothing else
    assert all(isinstance(node, exp.EQ | exp.And | exp.Column | exp.Identifier) for node in condition.walk())

    where = select.args["where"].this
    assert isinstance(where, exp.LTE)
    assert (where.this.table, where.this.name) == (c, "SYS_CHANGE_VERSION")
    assert where.expression.this == "42"  # the upper bound read by open()

    operation, *key_items = select.expressions[: 1 + len(ODD_KEYS)]
    assert (operation.this.table, operation.this.name) == (c, "SYS_CHANGE_OPERATION")
    # c's keys, cast like the pinned columns: the guid key is lower-case text from c.
    for item, key in zip(key_items, ODD_KEYS, strict=True):
        [column] = item.find_all(exp.Column)
        assert (column.table, column.name) == (c, key)
    assert key_items[1].this.find(exp.Lower) is not None
    # then t's pinned select list, in order, every column from t with its lossless cast.
    pinned = select.expressions[1 + len(ODD_KEYS) :]
    assert [output_name(item) for item in pinned] == [m.name for m in ODD_COLUMNS]
    for item, mapped in zip(pinned, ODD_COLUMNS, strict=True):
        [column] = item.find_all(exp.Column)
        assert (column.table, column.name) == (t, mapped.name)
        assert (item.find(exp.Convert) is not None) == (mapped.fetch in ("text", "guid"))
    assert len({output_name(item) for item in select.expressions}) == len(select.expressions)


def test_isolation_statement_through_mssql_python_only() -> None:
    for engine, allowed, expected in [
        ("mssql-python", True, ["SET NOCOUNT", "SNAPSHOT", "SELECT"]),
        ("mssql-python", False, ["SELECT"]),  # the database refuses snapshot: the default applies
        ("connectorx", True, ["SELECT"]),  # connectorx runs one statement: no SET possible
    ]:
        feed, fake = make_feed(engine)
        fake.snapshot_allowed = allowed
        fake.insert(id=1, name="a", qty=1)
        feed.changes(feed.open("0")).upserts.read_all()
        changes_sql = next(s for s in fake.statements if "CHANGETABLE" in s)
        kinds = []
        for statement in parse_tsql(changes_sql):
            if isinstance(statement, exp.Select):
                kinds.append("SELECT")
            else:
                [item] = statement.expressions
                kinds.append("SNAPSHOT" if item.args.get("kind") == "TRANSACTION" else "SET NOCOUNT")
                if item.args.get("kind") == "TRANSACTION":
                    assert item.expressions[0].name == "ISOLATION LEVEL SNAPSHOT"
        assert kinds == expected, (engine, allowed)
        assert ("snapshot isolation" in feed.describe()) == (expected[0] != "SELECT")


def test_upper_bound_is_read_before_the_changes_and_later_writes_wait() -> None:
    feed, fake = make_feed()
    fake.insert(id=1, name="a", qty=1)
    fake.insert(id=2, name="b", qty=2)
    window = feed.open("1")
    fake.insert(id=3, name="late", qty=3)  # commits after the bound was read
    changes = feed.changes(window)
    upserts = changes.upserts.read_all()
    first, second, third = fake.statements
    assert "CHANGE_TRACKING_CURRENT_VERSION" in first and "CHANGETABLE" not in first
    assert "CHANGETABLE" in second
    assert "CHANGE_TRACKING_MIN_VALID_VERSION" in third  # validity checked again after the read
    assert window.end == "2"
    assert upserts.column("id").to_pylist() == [2]  # id 3 is the next window's
    assert feed.changes(feed.open(window.end)).upserts.read_all().column("id").to_pylist() == [3]


@pytest.mark.parametrize("start", ["5; DROP TABLE x", "-1", "0x10", "", "1e3", " 5", "²", "٣"])
def test_journaled_version_must_be_digits(start: str) -> None:
    feed, _ = make_feed()
    with pytest.raises(SourceError, match="not a version number"):
        feed.open(start)


# --- behaviour against the fake server -------------------------------------------------------------


def test_first_run_window_is_the_current_version() -> None:
    feed, fake = make_feed()
    fake.insert(id=1, name="a", qty=1)
    assert feed.open(None) == FeedWindow(None, "1")
    with pytest.raises(SourceError, match="first run"):
        feed.changes(FeedWindow(None, "1"))


def test_untracked_table_is_an_error_with_the_statements_to_enable_it() -> None:
    feed, fake = make_feed(schema=ODD_SCHEMA, table=ODD_TABLE, columns=ODD_COLUMNS, keys=ODD_KEYS)
    fake.table_tracks = False
    for start in (None, "3"):
        with pytest.raises(SourceError) as info:
            feed.open(start)
        text = str(info.value)
        assert feed.table_sql() in text and "not enabled" in text
        assert "ALTER DATABASE CURRENT SET CHANGE_TRACKING = ON" in text
        assert f"ALTER TABLE {feed.table_sql()} ENABLE CHANGE_TRACKING" in text
        assert "VIEW CHANGE TRACKING" in text
        assert SECRET not in text
    fake.table_tracks, fake.database_tracks = True, False
    with pytest.raises(SourceError, match=r"for the database .*CHANGE_TRACKING_CURRENT_VERSION\(\) is NULL"):
        feed.open("3")


def test_too_old_version_is_an_expired_window_with_both_versions() -> None:
    feed, fake = make_feed()
    for i in range(1, 11):
        fake.insert(id=i, name=str(i), qty=i)
    fake.cleanup(up_to=7)  # retention removed the changes up to version 7
    window = feed.open("5")
    assert window.start == "5" and window.end == "10"
    assert window.expired and "5" in window.expired and "minimum valid version 7" in window.expired
    with pytest.raises(SourceError, match="no changes to read"):
        feed.changes(window)
    assert feed.open("7").expired is None  # exactly the minimum valid version is still readable
    fake.truncate()
    assert "truncated" in (feed.open("9").expired or "")
    assert "ahead of the database" in (feed.open("99").expired or "")  # a restored database


def test_rounds_of_inserts_updates_deletes_replay_to_the_source() -> None:
    feed, fake = make_feed()
    for i in range(1, 6):
        fake.insert(id=i, name=f"n{i}", qty=i)
    window = feed.open(None)
    store = {(r["id"],): r for r in source_rows(fake).values()}  # the runner's full load
    position = window.end
    rounds = [
        lambda: (fake.update((2,), name="two"), fake.delete((3,)), fake.insert(id=6, name="n6", qty=6)),
        lambda: (fake.insert(id=7, name="gone", qty=7), fake.delete((7,))),  # insert+delete: a 'D'
        lambda: (fake.delete((1,)), fake.insert(id=1, name="back", qty=10)),  # delete+re-insert: a 'U'
        lambda: (fake.update((6,), qty=60), fake.update((6,), qty=61), fake.delete((4,))),
        lambda: None,  # nothing changed
    ]
    for change in rounds:
        change()
        window = feed.open(position)
        assert window.expired is None
        apply(store, feed.changes(window), ["id"])
        assert store == source_rows(fake)
        position = window.end
    assert store[(1,)]["name"] == "back" and store[(6,)]["qty"] == 61 and (7,) not in store


def test_deletes_and_upserts_split_and_a_missing_joined_row_is_a_delete() -> None:
    feed, fake = make_feed()
    for i in range(1, 5):
        fake.insert(id=i, name=f"n{i}", qty=i)
    start = str(fake.version)
    fake.update((1,), name="one")
    fake.update((2,), name="two")
    fake.delete((3,))
    fake.hidden = {(2,)}  # the join no longer finds id 2 (deleted after CHANGETABLE was read)
    changes = feed.changes(feed.open(start))
    upserts = changes.upserts.read_all()
    assert upserts.to_pylist() == [{"id": 1, "name": "one", "qty": 1}]
    assert sorted(changes.deletes.column("id").to_pylist()) == [2, 3]
    # Key types and the upserts' schema are the pinned ones, not the driver's int64.
    assert upserts.schema == feed.home.schema()
    assert changes.deletes.schema == pa.schema([pa.field("id", pa.int32())])


def test_deletes_wait_for_the_upserts_to_be_read() -> None:
    feed, fake = make_feed()
    fake.insert(id=1, name="a", qty=1)
    fake.delete((1,))
    changes = feed.changes(feed.open("0"))
    assert not changes.ready
    with pytest.raises(SourceError, match=r"read FeedChanges\.upserts to its end"):
        _ = changes.deletes
    assert changes.upserts.read_all().num_rows == 0
    assert changes.ready and changes.deletes.column("id").to_pylist() == [1]


def test_cleanup_overtaking_the_read_fails_before_the_commit() -> None:
    feed, fake = make_feed()
    for i in range(1, 4):
        fake.insert(id=i, name=str(i), qty=i)
    window = feed.open("1")
    fake.on_changes = lambda: fake.cleanup(up_to=2)  # cleanup runs while the changes stream
    changes = feed.changes(window)
    with pytest.raises(SourceError, match="cleanup removed changes after version 1") as info:
        changes.upserts.read_all()
    assert info.value.transient  # retried: the rerun finds the window expired and reloads
    assert not changes.ready


def test_entity_keys_must_be_the_primary_key() -> None:
    feed, fake = make_feed()
    fake.primary_key = ["id", "name"]
    with pytest.raises(ConfigError, match="primary key") as info:
        feed.open("0")
    assert info.value.context.field == "watermark.primary_key"
    fake.catalog_visible = False  # a login that cannot see the catalog is not refused on that ground
    fake.primary_key = ["id"]
    assert feed.open("0").expired is None


def test_acknowledge_is_a_no_op_and_describe_is_safe() -> None:
    feed, fake = make_feed()
    assert "isolation known after open" in feed.describe()
    window = feed.open(None)
    before = list(fake.statements)
    feed.acknowledge(window)
    assert fake.statements == before
    text = feed.describe()
    assert feed.kind == "ct_version"
    assert "Change Tracking" in text and "locking read committed" in text and SECRET not in text
    fake.read_committed_snapshot = True
    feed.open(None)
    assert "read committed snapshot" in feed.describe()
