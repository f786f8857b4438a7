"""Prefect blocks (hygge/blocks/): the standard block suite, conversion to hygge's settings, save and
load through a real (in-process) Prefect API with secrets kept secret, `resolve()` and `hygge blocks
apply` (create → unchanged → update, dry run writes nothing)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect.testing.standard_test_suites import BlockStandardTestSuite
from pydantic import TypeAdapter, ValidationError
from typer.testing import CliRunner

from hygge.blocks import (
    BLOCK_CLASSES,
    DeltaLandingZone,
    HyggeAzureCredentials,
    MySqlConnection,
    OpenMirroringLandingZone,
    ParquetLandingZone,
    PostgresConnection,
    SqliteConnection,
    SqlServerConnection,
    resolve,
)
from hygge.blocks.apply import read_blocks
from hygge.cli.main import app
from hygge.config.models import AzureCredentialConfig, ConnectionConfig, StoreConfig
from hygge.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
SECRET = "s3cret-Pa55-do-not-print"
runner = CliRunner()


class TestStandardSuite(BlockStandardTestSuite):
    """Prefect's own checks (description, documentation URL, field descriptions, code example, logo)
    for every hygge block class."""

    @pytest.fixture(params=BLOCK_CLASSES, ids=lambda cls: cls.__name__)
    def block(self, request):
        return request.param


# --- conversion to hygge's settings (no API needed) -------------------------------------------


def test_sql_blocks_become_connection_configs():
    mssql = SqlServerConnection(host="erp", database="erp", user="u", password=SECRET).to_connection_config()
    assert isinstance(mssql, ConnectionConfig)
    assert (mssql.type, mssql.port, mssql.encrypt, mssql.trust_server_certificate) == (
        "mssql",
        1433,
        True,
        False,
    )
    assert mssql.password.get_secret_value() == SECRET
    pg = PostgresConnection(host="h", database="d").to_connection_config()
    assert (pg.type, pg.port, pg.password) == ("postgres", 5432, None)
    assert MySqlConnection(host="h", database="d").to_connection_config().port == 3306
    assert SqliteConnection(path="shop.sqlite").to_connection_config().path == "shop.sqlite"


def test_secrets_never_in_repr_or_str():
    for block in (
        SqlServerConnection(host="h", database="d", password=SECRET),
        HyggeAzureCredentials(type="account_key", account_key=SECRET),
        DeltaLandingZone(path="lake", credential_block=HyggeAzureCredentials(type="sas", sas_token=SECRET)),
    ):
        assert SECRET not in repr(block)
        assert SECRET not in str(block)


def test_azure_credentials_follow_hygge_rules():
    config = HyggeAzureCredentials(
        type="service_principal", tenant_id="t", client_id="c", client_secret=SECRET
    ).to_credential_config()
    assert isinstance(config, AzureCredentialConfig)
    assert config.client_secret.get_secret_value() == SECRET
    with pytest.raises(ValidationError, match="needs account_key"):
        HyggeAzureCredentials(type="account_key")
    assert HyggeAzureCredentials().to_credential_config().type == "default"


def test_landing_zones_become_store_configs():
    store = TypeAdapter(StoreConfig)
    mirror = OpenMirroringLandingZone(
        workspace="Sales", database="Erp.MountedRelationalDatabase", db_schema="dbo", credential="lake"
    ).to_store_config()
    assert mirror["schema"] == "dbo" and mirror["credential"] == "lake"
    assert store.validate_python(mirror).location.endswith("/Erp.MountedRelationalDatabase/Files/LandingZone")
    assert "confirm" not in mirror and mirror["rebuild_wait_seconds"] == 600
    confirmed = OpenMirroringLandingZone(path="db/Files/LandingZone", confirm=300, rebuild_wait_seconds=60)
    settings = store.validate_python(confirmed.to_store_config())
    assert (settings.confirm, settings.rebuild_wait_seconds) == (300, 60)

    adls = DeltaLandingZone(
        account="mylake", container="landing", path="erp", credential_block=HyggeAzureCredentials()
    ).to_store_config()
    assert (adls["type"], adls["format"]) == ("adls", "delta")
    assert isinstance(adls["credential"], AzureCredentialConfig)
    assert store.validate_python(adls).location == "abfss://landing@mylake.dfs.core.windows.net/erp"

    onelake = ParquetLandingZone(
        workspace="Sales", item="Landing.Lakehouse", path="Files/erp"
    ).to_store_config()
    assert (onelake["type"], onelake["format"]) == ("onelake", "parquet")
    store.validate_python(onelake)
    assert DeltaLandingZone(path="lake").to_store_config()["type"] == "delta"

    with pytest.raises(ValidationError, match="needs `path`"):
        OpenMirroringLandingZone()
    with pytest.raises(ValidationError, match="Files/ or Tables/"):
        DeltaLandingZone(workspace="Sales", item="Landing.Lakehouse", path="erp")
    with pytest.raises(ValidationError, match="not both"):
        DeltaLandingZone(path="lake", credential="lake", credential_block=HyggeAzureCredentials())


def test_resolve_without_api_says_what_to_do(monkeypatch):
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    with (
        temporary_settings(restore_defaults={PREFECT_API_URL}),
        pytest.raises(ConfigError, match="PREFECT_API_URL") as info,
    ):
        resolve("sql-server-connection/erp")
    assert "write the settings" in str(info.value)


def test_resolve_rejects_bad_references():
    with pytest.raises(ConfigError, match="<type>/<name>"):
        resolve("erp")
    with pytest.raises(ConfigError, match="did you mean 'sql-server-connection'"):
        resolve("sql-server-conection/erp")


def test_blocks_files_are_valid(monkeypatch):
    for name in (
        "AZURITE_ACCOUNT_KEY", "ERP_HOST", "ERP_USER", "ERP_PASSWORD", "AZURE_CLIENT_ID",
        "LAKE_ACCOUNT", "FABRIC_WORKSPACE",
    ):  # fmt: skip
        monkeypatch.setenv(name, "x")
    monkeypatch.setenv("FABRIC_MIRRORED_DATABASE", "Erp.MountedRelationalDatabase")
    dev = read_blocks(ROOT / "blocks" / "dev.yml")
    prod = read_blocks(ROOT / "blocks" / "prod.yml")
    assert {slug for slug, _, _ in dev} >= {
        "postgres-connection",
        "hygge-azure-credentials",
        "delta-landing-zone",
    }
    assert {slug for slug, _, _ in prod} >= {"sql-server-connection", "open-mirroring-landing-zone"}


def test_blocks_file_needs_its_variables(tmp_path, monkeypatch):
    monkeypatch.delenv("HYGGE_TEST_UNSET", raising=False)
    file = tmp_path / "b.yml"
    file.write_text('blocks:\n  - {type: sqlite-connection, name: x, data: {path: "${HYGGE_TEST_UNSET}"}}\n')
    with pytest.raises(ConfigError, match="HYGGE_TEST_UNSET is not set"):
        read_blocks(file)
    file.write_text(
        "blocks:\n  - {type: sql-server-connection, name: x, data: {host: h, password: " + SECRET + "}}\n"
    )
    with pytest.raises(ConfigError) as info:
        read_blocks(file)
    assert "data.database" in str(info.value) and SECRET not in str(info.value)


# --- a real Prefect API --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def harness(prefect_harness: None) -> None:
    """The session's temporary Prefect API (tests/conftest.py)."""


def _name() -> str:
    return f"t-{uuid.uuid4().hex[:8]}"


def test_round_trip_keeps_the_secret_secret(harness):
    SqlServerConnection.register_type_and_schema()
    name = _name()
    SqlServerConnection(host="erp", database="erp", user="u", password=SECRET).save(name)
    loaded = SqlServerConnection.load(name)
    assert loaded.password.get_secret_value() == SECRET  # client-side, the real value
    assert SECRET not in repr(loaded)
    with get_client(sync_client=True) as client:
        document = client.read_block_document_by_name(name, "sql-server-connection", include_secrets=False)
    assert document.data["password"] == "********"
    config = resolve(f"sql-server-connection/{name}")
    assert isinstance(config, ConnectionConfig) and config.password.get_secret_value() == SECRET


def test_resolve_loads_credentials_and_landing_zones(harness):
    for cls in (HyggeAzureCredentials, OpenMirroringLandingZone):
        cls.register_type_and_schema()
    cred, zone = _name(), _name()
    HyggeAzureCredentials(type="account_key", account_key=SECRET).save(cred)
    OpenMirroringLandingZone(
        path="az://landing/LandingZone",
        account="devstoreaccount1",
        credential=f"hygge-azure-credentials/{cred}",
    ).save(zone)
    credential = resolve(f"hygge-azure-credentials/{cred}")
    assert isinstance(credential, AzureCredentialConfig) and credential.type == "account_key"
    store = resolve(f"open-mirroring-landing-zone/{zone}")
    assert store["credential"].account_key.get_secret_value() == SECRET
    assert TypeAdapter(StoreConfig).validate_python(store).location == "az://landing/LandingZone"
    with pytest.raises(ConfigError, match="hygge blocks apply"):
        resolve(f"sql-server-connection/{_name()}")


def _apply(file: Path, *extra: str):
    result = runner.invoke(app, ["blocks", "apply", str(file), *extra])
    assert result.exit_code == 0, result.output
    assert SECRET not in result.output
    return result.output


def test_apply_creates_then_is_unchanged_then_updates(harness, tmp_path, monkeypatch):
    erp, lake = _name(), _name()
    monkeypatch.setenv("HYGGE_TEST_ERP_PASSWORD", SECRET)
    monkeypatch.setenv("HYGGE_TEST_KEY", SECRET)
    file = tmp_path / "blocks.yml"

    def write(port: int) -> None:
        file.write_text(
            "blocks:\n"
            f"  - type: sql-server-connection\n    name: {erp}\n"
            f"    data: {{host: erp, port: {port}, database: erp, user: u, password: '${{HYGGE_TEST_ERP_PASSWORD}}'}}\n"
            f"  - type: hygge-azure-credentials\n    name: {lake}\n"
            "    data: {type: account_key, account_key: '${HYGGE_TEST_KEY}'}\n"
        )

    write(1433)
    dry = _apply(file, "--dry-run")
    assert f"would create sql-server-connection/{erp}" in dry and "nothing written" in dry
    with pytest.raises(ValueError):
        SqlServerConnection.load(erp)

    first = _apply(file)
    assert (
        f"create sql-server-connection/{erp}" in first and f"create hygge-azure-credentials/{lake}" in first
    )
    assert SqlServerConnection.load(erp).password.get_secret_value() == SECRET

    second = _apply(file)
    assert f"unchanged sql-server-connection/{erp}" in second
    assert f"unchanged hygge-azure-credentials/{lake}" in second
    assert "0 create, 0 update, 2 unchanged" in second

    write(14330)
    dry = _apply(file, "--dry-run")
    assert f"would update sql-server-connection/{erp} (port)" in dry
    assert SqlServerConnection.load(erp).port == 1433  # a dry run writes nothing
    third = _apply(file)
    assert f"update sql-server-connection/{erp} (port)" in third
    assert f"unchanged hygge-azure-credentials/{lake}" in third
    assert SqlServerConnection.load(erp).port == 14330

    monkeypatch.setenv("HYGGE_TEST_ERP_PASSWORD", "another-" + SECRET)  # a changed secret is seen
    fourth = _apply(file)
    assert f"update sql-server-connection/{erp} (password)" in fourth
    assert "another-" not in fourth
    assert SqlServerConnection.load(erp).password.get_secret_value() == "another-" + SECRET


def test_apply_without_api_fails_clearly(tmp_path, monkeypatch):
    file = tmp_path / "blocks.yml"
    file.write_text("blocks:\n  - {type: sqlite-connection, name: shop, data: {path: shop.sqlite}}\n")
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        result = runner.invoke(app, ["blocks", "apply", str(file), "--dry-run"])
    assert result.exit_code == 2
    assert "PREFECT_API_URL" in result.output
