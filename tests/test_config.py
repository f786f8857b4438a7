"""Project loading: layered merge, `${VAR}` expansion, `--var` overrides, selection, and one clear
ConfigError (file, flow/entity, key, hint) for every kind of bad input."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from hygge.config import load_project, parse_var
from hygge.config.models import DeltaStoreConfig, ParquetStoreConfig, SqlHomeConfig
from hygge.errors import ConfigError

PROJECT = """
name: demo
connections:
  src:
    type: mssql
    host: db.example
    database: sales
    user: loader
    password: secret
"""

FLOW = """
home:
  type: sql
  connection: src
  batch_size: 1000
store:
  type: parquet
  path: lake
run_type: full_drop
entities:
  - orders
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def make_project(
    root: Path,
    *,
    project: str = PROJECT,
    flows: dict[str, str] | None = None,
    entities: dict[str, dict[str, str]] | None = None,
) -> Path:
    write(root / "hygge.yml", project)
    for name, text in (flows if flows is not None else {"sales": FLOW}).items():
        write(root / "flows" / name / "flow.yml", text)
    for flow, files in (entities or {}).items():
        for name, text in files.items():
            write(root / "flows" / flow / "entities" / f"{name}.yml", text)
    return root


def config_error(root: Path, **kwargs) -> ConfigError:
    kwargs.setdefault("env", {})
    with pytest.raises(ConfigError) as info:
        load_project(root, **kwargs)
    return info.value


def assert_names(
    error: ConfigError,
    *,
    file: Path,
    key: str | None = None,
    flow: str | None = None,
    entity: str | None = None,
    hint: str | None = None,
) -> str:
    """The rendered error names the file, flow, entity and key, and carries a hint."""
    text = str(error)
    assert str(file) in text, text
    assert error.context.file == str(file), text
    if key is not None:
        assert key in text, text
    if flow is not None:
        assert f"flow '{flow}'" in text, text
    if entity is not None:
        assert f"entity '{entity}'" in text, text
    assert error.hint, f"no hint in: {text}"
    assert "Try: " in text, text
    if hint is not None:
        assert hint in text, text
    return text


# --- loading and merging -----------------------------------------------------------------------


def test_minimal_project_loads_with_defaults(tmp_path: Path) -> None:
    """A project with one flow and one listed entity resolves to a fully typed entity."""
    project = load_project(make_project(tmp_path), env={})
    assert project.config.name == "demo"
    assert list(project.flows) == ["sales"]
    [entity] = project.flows["sales"].entities
    assert entity.flow == "sales" and entity.name == "orders"
    assert isinstance(entity.home, SqlHomeConfig)
    assert entity.home.connection == "src" and entity.home.batch_size == 1000
    assert isinstance(entity.store, ParquetStoreConfig) and entity.store.path == "lake"
    assert entity.run_type == "full_drop"
    assert entity.file == str(tmp_path / "flows" / "sales" / "flow.yml")


def test_layers_merge_flow_then_defaults_then_list_item_then_entity_file(tmp_path: Path) -> None:
    """Each later layer wins key by key; home/store/columns merge per key instead of being replaced."""
    flow = """
    home: {type: sql, connection: src, batch_size: 10, schema: flowschema}
    store: {type: parquet, path: lake, compression: snappy}
    run_type: full_drop
    watermark: {watermark_column: flow_wm}
    defaults:
      home: {batch_size: 20}
      store: {compression: zstd}
      columns: {a: int64}
    entities:
      - plain
      - name: listed
        table: dbo.listed_table
        home: {batch_size: 30}
        columns: {b: string}
      - name: filed
        home: {batch_size: 30}
        run_type: incremental
        watermark: {watermark_column: list_wm, primary_key: id}
    """
    entity_file = """
    home: {batch_size: 40}
    store: {row_group_rows: 5}
    watermark: {watermark_column: file_wm, primary_key: "id, region"}
    columns: {a: int32}
    """
    root = make_project(tmp_path, flows={"f": flow}, entities={"f": {"filed": entity_file}})
    entities = {e.name: e for e in load_project(root, env={}).flows["f"].entities}
    assert list(entities) == ["plain", "listed", "filed"]

    plain = entities["plain"]
    assert plain.home.batch_size == 20  # defaults beat flow
    assert plain.home.db_schema == "flowschema"  # flow key kept
    assert plain.store.compression == "zstd"
    assert plain.watermark and plain.watermark.watermark_column == "flow_wm"
    assert plain.columns == {"a": "int64"}

    listed = entities["listed"]
    assert listed.home.batch_size == 30  # list item beats defaults
    assert listed.table == "dbo.listed_table"
    assert listed.columns == {"a": "int64", "b": "string"}  # merged per key
    assert listed.file == str(root / "flows" / "f" / "flow.yml")

    filed = entities["filed"]
    assert filed.home.batch_size == 40  # entity file beats list item
    assert filed.home.db_schema == "flowschema"
    assert filed.store.compression == "zstd" and filed.store.row_group_rows == 5
    assert filed.run_type == "incremental"  # from the list item, not overridden by the file
    assert filed.watermark.watermark_column == "file_wm"
    assert filed.watermark.primary_key == ["id", "region"]
    assert filed.columns == {"a": "int32"}
    assert filed.file == str(root / "flows" / "f" / "entities" / "filed.yml")


def test_entity_files_alone_define_entities_and_enabled_false_drops_one(tmp_path: Path) -> None:
    """An entity file adds an entity not listed in flow.yml; `enabled: false` removes an entity."""
    flow = """
    home: {type: sql, connection: src}
    store: {type: delta, path: lake}
    entities:
      - name: disabled
        enabled: false
    """
    root = make_project(
        tmp_path,
        flows={"f": flow},
        entities={"f": {"customers": "table: crm.customers\n", "other": "name: renamed\n"}},
    )
    entities = load_project(root, env={}).flows["f"].entities
    assert sorted(e.name for e in entities) == ["customers", "renamed"]
    assert all(isinstance(e.store, DeltaStoreConfig) for e in entities)


def test_watermark_merges_key_by_key(tmp_path: Path) -> None:
    """An entity adding a primary key keeps the flow's watermark column (and may still replace it)."""
    flow = FLOW.replace("run_type: full_drop", "run_type: incremental")
    flow += "watermark: {watermark_column: updated_at}\n"
    flow = flow.replace("- orders", "- orders\n  - name: lines\n    watermark: {watermark_column: line_ts}")
    root = make_project(
        tmp_path, flows={"sales": flow}, entities={"sales": {"orders": "watermark: {primary_key: id}\n"}}
    )
    entities = {e.name: e for e in load_project(root, env={}).flows["sales"].entities}
    assert entities["orders"].watermark.watermark_column == "updated_at"
    assert entities["orders"].watermark.primary_key == ["id"]
    assert entities["lines"].watermark.watermark_column == "line_ts"
    assert entities["lines"].watermark.primary_key == []


# --- ${VAR} expansion --------------------------------------------------------------------------


def test_variables_expand_with_defaults_and_escape(tmp_path: Path) -> None:
    """`${VAR}` takes the environment, `${VAR:-default}` falls back (also when empty), `$${` is literal."""
    project = """
    name: ${PROJECT_NAME}
    connections:
      src:
        type: postgres
        host: ${DB_HOST:-localhost}
        port: ${DB_PORT:-5432}
        database: ${DB_NAME:-fallback}
        password: ${DB_PASSWORD}
    """
    flow = """
    home: {type: sql, connection: src}
    store: {type: parquet, path: "${LAKE}/out"}
    entities:
      - name: t
        query: "SELECT '$${NOT_A_VAR}' AS x, '${LAKE}' AS y"
    """
    env = {"PROJECT_NAME": "p1", "DB_NAME": "", "DB_PASSWORD": "pw$word", "LAKE": "/data"}
    loaded = load_project(make_project(tmp_path, project=project, flows={"f": flow}), env=env)
    assert loaded.config.name == "p1"
    conn = loaded.config.connections["src"]
    assert conn.host == "localhost"
    assert conn.port == 5432  # expanded text is validated into the field's type
    assert conn.database == "fallback"  # empty value takes the default
    assert conn.password.get_secret_value() == "pw$word"
    [entity] = loaded.flows["f"].entities
    assert entity.store.path == "/data/out"
    assert entity.query == "SELECT '${NOT_A_VAR}' AS x, '/data' AS y"


def test_unset_variable_names_file_and_key(tmp_path: Path) -> None:
    """An unset `${VAR}` without a default is one ConfigError naming the variable, file and key."""
    flow = FLOW.replace("path: lake", "path: ${LAKE_ROOT}")
    root = make_project(tmp_path, flows={"sales": flow})
    error = config_error(root)
    assert_names(
        error, file=root / "flows" / "sales" / "flow.yml", key="store.path", flow="sales", hint="LAKE_ROOT"
    )
    assert "LAKE_ROOT" in error.message


def test_unset_variable_in_hygge_yml(tmp_path: Path) -> None:
    """An unset variable in hygge.yml names hygge.yml and the connection key."""
    root = make_project(tmp_path, project=PROJECT.replace("password: secret", "password: ${PW}"))
    assert_names(config_error(root), file=root / "hygge.yml", key="connections.src.password", hint="PW")


# --- unknown keys ------------------------------------------------------------------------------


def test_unknown_key_in_hygge_yml_suggests_the_right_one(tmp_path: Path) -> None:
    """A typo in hygge.yml is an error with a did-you-mean, not a silently ignored setting."""
    root = make_project(tmp_path, project=PROJECT + "optoins: {concurrency: 2}\n")
    error = config_error(root)
    assert_names(error, file=root / "hygge.yml", key="optoins", hint="did you mean 'options'")


def test_unknown_nested_key_in_hygge_yml(tmp_path: Path) -> None:
    """A typo inside a connection names the full key path and suggests the right key."""
    root = make_project(tmp_path, project=PROJECT.replace("database: sales", "databse: sales"))
    error = config_error(root)
    assert_names(error, file=root / "hygge.yml", key="connections.src.databse", hint="'database'")


def test_unknown_key_in_flow_yml(tmp_path: Path) -> None:
    """`run_tpye` in flow.yml names the flow and suggests `run_type`."""
    root = make_project(tmp_path, flows={"sales": FLOW.replace("run_type:", "run_tpye:")})
    error = config_error(root)
    assert_names(
        error,
        file=root / "flows" / "sales" / "flow.yml",
        key="run_tpye",
        flow="sales",
        hint="did you mean 'run_type'",
    )


def test_unknown_watermark_key_in_flow_yml(tmp_path: Path) -> None:
    """`watermark: {watermark_colum: x}` names watermark.watermark_colum and suggests the right key."""
    root = make_project(tmp_path, flows={"sales": FLOW + "watermark: {watermark_colum: x}\n"})
    error = config_error(root)
    assert_names(
        error,
        file=root / "flows" / "sales" / "flow.yml",
        key="watermark.watermark_colum",
        flow="sales",
        hint="did you mean 'watermark_column'",
    )


def test_unknown_store_key_in_flow_yml(tmp_path: Path) -> None:
    """`store: {type: delta, pth: x}` in flow.yml names the flow, store.pth and suggests `path`."""
    flow = FLOW.replace("type: parquet\n  path: lake", "type: delta\n  pth: x")
    root = make_project(tmp_path, flows={"sales": flow})
    error = config_error(root)
    assert_names(
        error,
        file=root / "flows" / "sales" / "flow.yml",
        key="store.pth",
        flow="sales",
        entity="orders",
        hint="did you mean 'path'",
    )


def test_unknown_store_key_in_flow_yml_with_entity_file(tmp_path: Path) -> None:
    """A store typo made in flow.yml is reported against flow.yml even when the entity has its own file."""
    flow = FLOW.replace("type: parquet\n  path: lake", "type: delta\n  pth: x")
    root = make_project(tmp_path, flows={"sales": flow}, entities={"sales": {"orders": "table: dbo.o\n"}})
    error = config_error(root)
    assert_names(
        error,
        file=root / "flows" / "sales" / "flow.yml",
        key="store.pth",
        flow="sales",
        entity="orders",
        hint="did you mean 'path'",
    )


def test_unknown_key_in_entity_file(tmp_path: Path) -> None:
    """A typo in an entity file names that file, the flow, the entity and suggests the right key."""
    root = make_project(tmp_path, entities={"sales": {"orders": "tabel: dbo.orders\n"}})
    error = config_error(root)
    assert_names(
        error,
        file=root / "flows" / "sales" / "entities" / "orders.yml",
        key="tabel",
        flow="sales",
        entity="orders",
        hint="did you mean 'table'",
    )


def test_unknown_key_in_entity_list_item(tmp_path: Path) -> None:
    """A typo in an `entities:` item names flow.yml, the entity and the key, with a did-you-mean
    (not a confusing 'Input should be a valid string' from the `str | mapping` union)."""
    flow = FLOW.replace("- orders", "- name: orders\n    tabel: dbo.orders")
    root = make_project(tmp_path, flows={"sales": flow})
    error = config_error(root)
    text = assert_names(
        error,
        file=root / "flows" / "sales" / "flow.yml",
        key="tabel",
        flow="sales",
        entity="orders",
        hint="did you mean 'table'",
    )
    assert "valid string" not in text


def test_unknown_home_key_in_entity_file(tmp_path: Path) -> None:
    """A home typo set in an entity file is reported against the entity file."""
    root = make_project(tmp_path, entities={"sales": {"orders": "home: {batch_sise: 5}\n"}})
    error = config_error(root)
    assert_names(
        error,
        file=root / "flows" / "sales" / "entities" / "orders.yml",
        key="home.batch_sise",
        flow="sales",
        entity="orders",
        hint="did you mean 'batch_size'",
    )


# --- unknown types, bad YAML, bad references ---------------------------------------------------


def test_unknown_home_type(tmp_path: Path) -> None:
    """An unknown home type names home and lists the types that exist."""
    root = make_project(tmp_path, flows={"sales": FLOW.replace("type: sql", "type: oracle")})
    error = config_error(root)
    text = assert_names(
        error, file=root / "flows" / "sales" / "flow.yml", key="home", flow="sales", entity="orders"
    )
    assert "oracle" in text and "sql" in error.hint and "parquet" in error.hint


def test_unknown_store_type(tmp_path: Path) -> None:
    """An unknown store type names store and lists the types that exist."""
    root = make_project(tmp_path, flows={"sales": FLOW.replace("type: parquet", "type: s3")})
    error = config_error(root)
    text = assert_names(
        error, file=root / "flows" / "sales" / "flow.yml", key="store", flow="sales", entity="orders"
    )
    assert "s3" in text and "delta" in error.hint and "parquet" in error.hint


def test_unknown_connection_type_in_hygge_yml(tmp_path: Path) -> None:
    """An unknown connection dialect names the key and lists the dialects."""
    root = make_project(tmp_path, project=PROJECT.replace("type: mssql", "type: oracle"))
    error = config_error(root)
    assert_names(error, file=root / "hygge.yml", key="connections.src.type", hint="mssql")


def test_invalid_yaml_names_file_and_line(tmp_path: Path) -> None:
    """Broken YAML is one ConfigError naming the file, the flow and the line."""
    root = make_project(tmp_path, flows={"sales": "home: {type: sql\nstore: [\n"})
    error = config_error(root)
    text = assert_names(error, file=root / "flows" / "sales" / "flow.yml", flow="sales")
    assert "invalid YAML" in text and "line" in text


def test_invalid_yaml_in_entity_file(tmp_path: Path) -> None:
    """Broken YAML in an entity file names that file, the flow and the entity."""
    root = make_project(tmp_path, entities={"sales": {"orders": "table: [dbo.orders\n"}})
    error = config_error(root)
    text = assert_names(
        error, file=root / "flows" / "sales" / "entities" / "orders.yml", flow="sales", entity="orders"
    )
    assert "invalid YAML" in text


def test_invalid_yaml_in_hygge_yml(tmp_path: Path) -> None:
    """Broken YAML in hygge.yml names hygge.yml and the line."""
    root = make_project(tmp_path, project="name: demo\n  bad: indent\n")
    text = assert_names(config_error(root), file=root / "hygge.yml")
    assert "line 2" in text


def test_unknown_connection_name(tmp_path: Path) -> None:
    """A home naming a connection that hygge.yml lacks is an error with a did-you-mean."""
    root = make_project(tmp_path, flows={"sales": FLOW.replace("connection: src", "connection: srx")})
    error = config_error(root)
    assert_names(
        error,
        file=root / "flows" / "sales" / "flow.yml",
        key="home.connection",
        flow="sales",
        entity="orders",
        hint="did you mean 'src'",
    )


def test_unknown_connection_set_in_entity_file_names_that_file(tmp_path: Path) -> None:
    """The error names the file where the bad connection was written, not just the last layer."""
    root = make_project(tmp_path, entities={"sales": {"orders": "home: {connection: other}\n"}})
    assert_names(
        config_error(root),
        file=root / "flows" / "sales" / "entities" / "orders.yml",
        key="home.connection",
        flow="sales",
        entity="orders",
    )


def test_store_typo_in_defaults_names_flow_yml(tmp_path: Path) -> None:
    """A typo under `defaults: store:` is reported against flow.yml even with an entity file present."""
    flow = FLOW + "defaults: {store: {compresion: zstd}}\n"
    root = make_project(tmp_path, flows={"sales": flow}, entities={"sales": {"orders": "table: dbo.o\n"}})
    assert_names(
        config_error(root),
        file=root / "flows" / "sales" / "flow.yml",
        key="store.compresion",
        entity="orders",
        hint="did you mean 'compression'",
    )


def test_incremental_without_watermark_column(tmp_path: Path) -> None:
    """run_type incremental with no watermark column is an error naming the key and the way out."""
    root = make_project(tmp_path, entities={"sales": {"orders": "run_type: incremental\n"}})
    error = config_error(root)
    text = assert_names(
        error,
        file=root / "flows" / "sales" / "entities" / "orders.yml",
        key="watermark.watermark_column",
        flow="sales",
        entity="orders",
    )
    assert "incremental" in text


def test_incremental_set_in_flow_yml_names_flow_yml(tmp_path: Path) -> None:
    """When flow.yml asks for incremental without a watermark, flow.yml is named, not the entity file."""
    flow = FLOW.replace("run_type: full_drop", "run_type: incremental")
    root = make_project(tmp_path, flows={"sales": flow}, entities={"sales": {"orders": "table: dbo.o\n"}})
    assert_names(
        config_error(root),
        file=root / "flows" / "sales" / "flow.yml",
        key="watermark.watermark_column",
        flow="sales",
        entity="orders",
    )


def test_invalid_value_names_key(tmp_path: Path) -> None:
    """A value of the wrong kind (run_type: sometimes) names the key and the allowed values."""
    root = make_project(tmp_path, flows={"sales": FLOW.replace("run_type: full_drop", "run_type: sometimes")})
    error = config_error(root)
    assert_names(
        error, file=root / "flows" / "sales" / "flow.yml", key="run_type", flow="sales", hint="incremental"
    )


def test_missing_project_file(tmp_path: Path) -> None:
    """A folder without hygge.yml (here or above) is a ConfigError with a hint."""
    with pytest.raises(ConfigError) as info:
        load_project(tmp_path / "nowhere", env={})
    assert "hygge.yml" in str(info.value) and info.value.hint


def test_project_found_from_a_subfolder(tmp_path: Path) -> None:
    """Loading from inside the project finds hygge.yml in a parent folder."""
    root = make_project(tmp_path)
    assert load_project(root / "flows" / "sales", env={}).root == root.resolve()


# --- --var overrides ---------------------------------------------------------------------------


def test_parse_var_keeps_yaml_types() -> None:
    """`--var` values keep their YAML type: 1 is the integer 1 (not True, not "1")."""
    key, value = parse_var("flow.f.home.batch_size=1")
    assert key == "flow.f.home.batch_size"
    assert value == 1 and type(value) is int
    assert parse_var("flow.f.run_type=incremental") == ("flow.f.run_type", "incremental")
    assert parse_var("flow.f.enabled=true")[1] is True
    assert parse_var("flow.f.x=0")[1] == 0 and type(parse_var("flow.f.x=0")[1]) is int
    assert parse_var("flow.f.query=a=b")[1] == "a=b"
    assert parse_var("flow.f.path=")[1] == ""
    with pytest.raises(ConfigError):
        parse_var("no-equals-sign")


def test_var_overrides_apply_to_the_flow(tmp_path: Path) -> None:
    """`--var flow.f.run_type=incremental` and `flow.f.home.batch_size=1` change the flow's entities."""
    flow = FLOW + "watermark: {watermark_column: updated_at}\n"
    root = make_project(tmp_path, flows={"sales": flow})
    variables = dict(
        parse_var(v) for v in ("flow.sales.run_type=incremental", "flow.sales.home.batch_size=1")
    )
    [entity] = load_project(root, variables=variables, env={}).flows["sales"].entities
    assert entity.run_type == "incremental"
    assert entity.home.batch_size == 1 and type(entity.home.batch_size) is int
    assert entity.home.connection == "src"  # the rest of home is kept


def test_var_override_of_unknown_flow(tmp_path: Path) -> None:
    """`--var` naming a flow that does not exist is an error with a did-you-mean."""
    root = make_project(tmp_path)
    error = config_error(root, variables={"flow.sales2.run_type": "incremental"})
    assert_names(error, file=root / "hygge.yml", hint="did you mean 'sales'")
    assert "sales2" in str(error)


def test_var_override_with_bad_shape(tmp_path: Path) -> None:
    """`--var` keys must look like flow.<flow>.<key>."""
    root = make_project(tmp_path)
    error = config_error(root, variables={"run_type": "incremental"})
    assert_names(error, file=root / "hygge.yml", key="run_type")


def test_var_override_that_is_invalid_is_reported(tmp_path: Path) -> None:
    """A `--var` that makes the flow invalid (incremental, no watermark) fails loudly."""
    root = make_project(tmp_path)
    error = config_error(root, variables={"flow.sales.run_type": "incremental"})
    assert "watermark" in str(error) and error.context.flow == "sales"


def test_var_override_with_unknown_key_is_reported(tmp_path: Path) -> None:
    """A `--var` with a typo in its key is an unknown-key error, not silently ignored."""
    root = make_project(tmp_path)
    error = config_error(root, variables={"flow.sales.run_tpye": "incremental"})
    assert_names(
        error, file=root / "flows" / "sales" / "flow.yml", key="run_tpye", hint="did you mean 'run_type'"
    )


# --- selection ---------------------------------------------------------------------------------


@pytest.fixture
def two_flows(tmp_path: Path):
    flow_b = FLOW.replace("- orders", "- invoices\n  - payments")
    root = make_project(tmp_path, flows={"sales": FLOW, "billing": flow_b})
    return load_project(root, env={})


def names(entities) -> list[str]:
    return sorted(f"{e.flow}.{e.name}" for e in entities)


def test_select_everything_by_default(two_flows) -> None:
    """No flows and no entities selects every entity of every flow."""
    assert names(two_flows.select()) == ["billing.invoices", "billing.payments", "sales.orders"]


def test_select_by_flows_keeps_every_named_flow(two_flows) -> None:
    """Repeated flow names all count (the earlier generation kept only the last)."""
    assert names(two_flows.select(flows=["billing"])) == ["billing.invoices", "billing.payments"]
    assert names(two_flows.select(flows=["billing", "sales"])) == [
        "billing.invoices",
        "billing.payments",
        "sales.orders",
    ]


def test_select_by_entities_and_union_with_flows(two_flows) -> None:
    """`flow.entity` picks single entities; with flows too, the result is the union."""
    assert names(two_flows.select(entities=["billing.payments"])) == ["billing.payments"]
    assert names(two_flows.select(flows=["sales"], entities=["billing.payments"])) == [
        "billing.payments",
        "sales.orders",
    ]


def test_select_unknown_flow_is_an_error(two_flows) -> None:
    """An unknown flow name is a ConfigError suggesting the closest flow."""
    with pytest.raises(ConfigError) as info:
        two_flows.select(flows=["billling"])
    assert "billling" in str(info.value) and "did you mean 'billing'" in str(info.value)


def test_select_unknown_entity_is_an_error(two_flows) -> None:
    """An unknown `flow.entity` (or one without its flow) is a ConfigError suggesting the closest."""
    with pytest.raises(ConfigError) as info:
        two_flows.select(entities=["billing.payment"])
    assert "did you mean 'billing.payments'" in str(info.value)
    with pytest.raises(ConfigError) as info:
        two_flows.select(entities=["payments"])
    assert "flow.entity" in str(info.value) and info.value.hint
