"""Azure configuration: locations (local, ADLS Gen2, OneLake, Azurite) and what clients take from them,
credentials turned into object_store options, bearer tokens renewed before expiry, one clear
ConfigError for each bad Azure setting, credential and container failures on a real Azurite, and
secrets kept out of every repr, description and error text."""

from __future__ import annotations

import base64
import sqlite3
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, NamedTuple

import obstore
import pytest
import yaml

from hygge.config import load_project
from hygge.config.models import AzureCredentialConfig, RemoteSettings
from hygge.errors import ConfigError, HyggeError
from hygge.storage import Storage, parse_location
from hygge.storage import credentials as creds
from hygge.storage.credentials import REFRESH_MARGIN_SECONDS, STORAGE_SCOPE, TokenSource
from hygge.stores import make_store, store_root

WS_GUID = "3f2504e0-4f89-41d3-9a0c-0305e82c3301"
ITEM_GUID = "a1b2c3d4-0000-4000-8000-0123456789ab"
ONELAKE_DFS = "onelake.dfs.fabric.microsoft.com"
ABFSS = "abfss://c@acct.dfs.core.windows.net"
AZURITE = "http://127.0.0.1:10000/devstoreaccount1"

# Obviously fake values, each distinctive enough to be found in any text it leaks into.
ACCOUNT_KEY = base64.b64encode(b"hygge-test-account-key-0123456789").decode()
CLIENT_SECRET = "sp-secret-Zq8~value-4711"
SAS_SIGNATURE = "SASsignature4711"  # the secret part of a SAS; the other fields are not secret
SAS = f"sv=2022-11-02&ss=b&srt=co&sp=rwdl&se=2030-01-01T00:00:00Z&sig={SAS_SIGNATURE}%3D"


# --- fakes for azure-identity ----------------------------------------------------------------------


class FakeToken(NamedTuple):
    """What azure-identity's get_token returns (an AccessToken): .token and .expires_on."""

    token: str
    expires_on: int


class FakeCredential:
    """An azure-identity credential: each get_token call issues a new token valid for `lifetime` s."""

    def __init__(self, lifetime: float = 3600, delay: float = 0.0, clock: Any = time.time, **_: Any):
        self.lifetime = lifetime
        self.delay = delay
        self.clock = clock
        self.scopes: list[tuple[str, ...]] = []
        self._lock = threading.Lock()

    @property
    def calls(self) -> int:
        return len(self.scopes)

    def get_token(self, *scopes: str, **_: Any) -> FakeToken:
        if self.delay:
            time.sleep(self.delay)  # a slow token endpoint widens any race between callers
        with self._lock:
            self.scopes.append(scopes)
            number = len(self.scopes)
        return FakeToken(f"token-{number}", int(self.clock() + self.lifetime))


@pytest.fixture
def fake_identity(monkeypatch: pytest.MonkeyPatch) -> list[FakeCredential]:
    """Replace azure-identity's DefaultAzureCredential and AzureCliCredential; yields those created."""
    import azure.identity

    made: list[FakeCredential] = []

    def factory(**kwargs: Any) -> FakeCredential:
        credential = FakeCredential(**{k: v for k, v in kwargs.items() if k != "managed_identity_client_id"})
        credential.kwargs = kwargs  # type: ignore[attr-defined]
        made.append(credential)
        return credential

    monkeypatch.setattr(azure.identity, "DefaultAzureCredential", factory)
    monkeypatch.setattr(azure.identity, "AzureCliCredential", factory)
    return made


# --- 1. locations ----------------------------------------------------------------------------------


def test_local_relative_path_resolves_against_base(tmp_path: Path) -> None:
    location = parse_location("data/lake", tmp_path)
    assert location.kind == "local" and location.is_local
    assert location.path == str((tmp_path / "data" / "lake").resolve())
    assert location.url == location.path
    assert Storage.at("data/lake", tmp_path).options() is None


def test_local_relative_path_without_base_resolves_against_cwd(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert parse_location("lake").path == str((tmp_path / "lake").resolve())


def test_local_absolute_and_file_url(tmp_path: Path) -> None:
    target = str((tmp_path / "abs").resolve())
    assert parse_location(target, Path("/elsewhere")).path == target
    from_url = parse_location(f"file://{target}", Path("/elsewhere"))
    assert from_url.kind == "local" and from_url.path == target


@pytest.mark.parametrize(
    ("text", "account", "container", "path", "url"),
    [
        (f"{ABFSS}/a/b", "acct", "c", "a/b", f"{ABFSS}/a/b"),
        ("abfs://c@acct.dfs.core.windows.net/a", "acct", "c", "a", f"{ABFSS}/a"),
        ("https://acct.blob.core.windows.net/c/a", "acct", "c", "a", f"{ABFSS}/a"),
        ("https://acct.dfs.core.windows.net/c/a/b/", "acct", "c", "a/b", f"{ABFSS}/a/b"),
        ("https://acct.dfs.core.windows.net/c", "acct", "c", "", ABFSS),
    ],
)
def test_adls_urls(text: str, account: str, container: str, path: str, url: str) -> None:
    location = parse_location(text)
    assert (location.kind, location.account, location.container, location.path) == (
        "azure",
        account,
        container,
        path,
    )
    assert location.endpoint is None
    assert location.url == url  # deltalake's URL: always abfss on the dfs host
    assert location.describe() == url


def test_az_url_with_account() -> None:
    location = parse_location("az://c/p/q", account="acct")
    assert (location.kind, location.account, location.container, location.path) == (
        "azure",
        "acct",
        "c",
        "p/q",
    )
    assert location.url == f"{ABFSS}/p/q"


def test_az_url_with_endpoint() -> None:
    location = parse_location("az://c/p", endpoint=AZURITE)
    assert (location.kind, location.container, location.path, location.endpoint) == (
        "azure",
        "c",
        "p",
        AZURITE,
    )
    assert location.describe() == f"{AZURITE}/c/p"


def test_az_url_with_neither_account_nor_endpoint() -> None:
    with pytest.raises(ConfigError) as info:
        parse_location("az://c/p")
    assert "az://c/p" in str(info.value)
    assert "account" in info.value.hint and "endpoint" in info.value.hint


@pytest.mark.parametrize(
    ("text", "workspace", "path"),
    [
        (f"https://{ONELAKE_DFS}/Sales/Landing.Lakehouse/Files/erp", "Sales", "Landing.Lakehouse/Files/erp"),
        (f"abfss://Sales@{ONELAKE_DFS}/Landing.Lakehouse/Files/erp", "Sales", "Landing.Lakehouse/Files/erp"),
        (
            "https://onelake.blob.fabric.microsoft.com/Sales/Landing.Lakehouse/Files/erp",
            "Sales",
            "Landing.Lakehouse/Files/erp",
        ),
        (
            f"https://{ONELAKE_DFS}/Sales/Mirror.MirroredDatabase/Files/LandingZone",
            "Sales",
            "Mirror.MirroredDatabase/Files/LandingZone",
        ),
        (f"https://{ONELAKE_DFS}/{WS_GUID}/{ITEM_GUID}/Files/erp", WS_GUID, f"{ITEM_GUID}/Files/erp"),
        (f"abfss://{WS_GUID}@{ONELAKE_DFS}/{ITEM_GUID}/Tables/orders", WS_GUID, f"{ITEM_GUID}/Tables/orders"),
        (
            f"https://onelake.blob.fabric.microsoft.com/{WS_GUID}/{ITEM_GUID}/Files/a/b",
            WS_GUID,
            f"{ITEM_GUID}/Files/a/b",
        ),
    ],
)
def test_onelake_by_names_and_guids(text: str, workspace: str, path: str) -> None:
    location = parse_location(text)
    assert (location.kind, location.account, location.container, location.path) == (
        "onelake",
        "onelake",
        workspace,
        path,
    )
    assert location.url == f"abfss://{workspace}@{ONELAKE_DFS}/{path}"  # the DFS host, even from .blob.


@pytest.mark.parametrize(
    ("text", "hint_words"),
    [
        pytest.param(f"https://{ONELAKE_DFS}/Sales", ["<item>", "Files/"], id="no-item"),
        pytest.param(f"abfss://Sales@{ONELAKE_DFS}/", ["<item>", "Files/"], id="no-item-abfss"),
        pytest.param(f"https://{ONELAKE_DFS}/", ["workspace"], id="no-workspace"),
        pytest.param(
            f"https://{ONELAKE_DFS}/Sales/Landing/Files/erp", ["GUID", "Sales.Lakehouse"], id="item-untyped"
        ),
        pytest.param(f"https://{ONELAKE_DFS}/Sales/Landing.Lakehouse/erp/x", ["Files/"], id="no-files-level"),
        pytest.param(
            f"https://{ONELAKE_DFS}/Sales/Landing.Lakehouse/files/erp", ["Files/"], id="lowercase-files"
        ),
        pytest.param(
            f"https://{ONELAKE_DFS}/Sales/Landing.Lakehouse/Files", ["below Files/"], id="at-files-level"
        ),
        pytest.param(
            f"https://{ONELAKE_DFS}/Sales/Landing.Lakehouse/Tables/", ["below Files/"], id="at-tables-level"
        ),
        pytest.param("https://example.com/c/a", ["dfs.core.windows.net", ONELAKE_DFS], id="unknown-host"),
        pytest.param(
            "abfss://c@acct.file.core.windows.net/a", ["dfs.core.windows.net"], id="file-share-host"
        ),
        pytest.param("s3://bucket/a", ["abfss://", "az://"], id="unknown-scheme"),
        pytest.param("abfss://acct.dfs.core.windows.net/a", ["<container>@"], id="abfss-no-container"),
    ],
)
def test_malformed_locations_give_one_config_error_with_a_hint(text: str, hint_words: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        parse_location(text)
    error = info.value
    assert text in str(error), str(error)
    assert error.hint and "Try: " in str(error)
    for word in hint_words:
        assert word in error.hint, error.hint


# --- 1. object_store options per credential kind ---------------------------------------------------


def storage(text: str, credential: Any = None, **settings: Any) -> Storage:
    return Storage.at(text, None, RemoteSettings(credential=credential, **settings))


def test_options_account_key() -> None:
    s = storage(f"{ABFSS}/a", AzureCredentialConfig(type="account_key", account_key=ACCOUNT_KEY))
    assert s.uri == f"{ABFSS}/a"
    assert s.options() == {"account_name": "acct", "account_key": ACCOUNT_KEY}


@pytest.mark.parametrize("sas", [SAS, f"?{SAS}"])
def test_options_sas_without_leading_question_mark(sas: str) -> None:
    s = storage(f"{ABFSS}/a", AzureCredentialConfig(type="sas", sas_token=sas))
    assert s.options() == {"account_name": "acct", "sas_key": SAS}


def test_options_service_principal() -> None:
    credential = AzureCredentialConfig(
        type="service_principal", client_id="app-id", client_secret=CLIENT_SECRET, tenant_id="tenant-id"
    )
    assert storage(f"{ABFSS}/a", credential).options() == {
        "account_name": "acct",
        "client_id": "app-id",
        "client_secret": CLIENT_SECRET,
        "tenant_id": "tenant-id",
    }


def test_options_managed_identity_system_and_user_assigned() -> None:
    system = storage(f"{ABFSS}/a", AzureCredentialConfig(type="managed_identity"))
    # No credential options: object_store falls back to the instance metadata service (IMDS).
    assert system.options() == {"account_name": "acct"}
    user = storage(f"{ABFSS}/a", AzureCredentialConfig(type="managed_identity", client_id="uami-id"))
    assert user.options() == {"account_name": "acct", "client_id": "uami-id"}


def test_options_connection_string() -> None:
    text = (
        "DefaultEndpointsProtocol=https;AccountName=fromcs;"
        f"AccountKey={ACCOUNT_KEY};BlobEndpoint=https://fromcs.blob.core.windows.net/;"
    )
    credential = AzureCredentialConfig(type="connection_string", connection_string=text)
    s = storage("az://c/p", credential, endpoint="https://fromcs.blob.core.windows.net")
    assert s.location.account == "fromcs"  # the connection string names the account
    options = s.options()
    assert options is not None
    assert options["account_name"] == "fromcs"
    assert options["account_key"] == ACCOUNT_KEY
    assert options["endpoint"] == "https://fromcs.blob.core.windows.net"
    assert options["allow_http"] == "false"


def test_options_connection_string_with_http_blob_endpoint_allows_http() -> None:
    """An Azurite connection string on an abfss URL: its http endpoint is reachable (allow_http)."""
    text = f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={ACCOUNT_KEY};BlobEndpoint={AZURITE}/;"
    credential = AzureCredentialConfig(type="connection_string", connection_string=text)
    options = storage("abfss://c@devstoreaccount1.dfs.core.windows.net/p", credential).options()
    assert options is not None
    assert options["account_name"] == "devstoreaccount1"
    assert options["account_key"] == ACCOUNT_KEY
    assert options["endpoint"] == AZURITE
    assert options["allow_http"] == "true"


def test_connection_string_without_a_key_is_a_config_error() -> None:
    credential = AzureCredentialConfig(
        type="connection_string", connection_string="AccountName=a;BlobEndpoint=x"
    )
    with pytest.raises(ConfigError) as info:
        storage(f"{ABFSS}/a", credential)
    assert info.value.hint and "AccountKey" in str(info.value)


def test_options_emulator_endpoint_without_credential() -> None:
    s = storage("az://c/p", account="devstoreaccount1", endpoint=AZURITE)
    assert s.options() == {
        "account_name": "devstoreaccount1",
        "account_key": creds.AZURITE_KEY,
        "endpoint": AZURITE,
        "allow_http": "true",
    }
    assert s.describe() == f"{AZURITE}/c/p"
    assert s.uri == "abfss://c@devstoreaccount1.dfs.core.windows.net/p"  # deltalake: endpoint overrides host


def test_options_https_endpoint_does_not_allow_http() -> None:
    s = storage(
        "az://c/p",
        AzureCredentialConfig(type="account_key", account_key=ACCOUNT_KEY),
        account="acct",
        endpoint="https://proxy.example/acct",
    )
    options = s.options()
    assert options is not None and options["allow_http"] == "false"


def test_options_onelake_default_credential(fake_identity: list[FakeCredential]) -> None:
    s = storage(f"https://{ONELAKE_DFS}/Sales/Landing.Lakehouse/Files/erp")
    assert s.uri == f"abfss://Sales@{ONELAKE_DFS}/Landing.Lakehouse/Files/erp"
    assert s.options() == {
        "account_name": "onelake",
        "use_fabric_endpoint": "true",
        "bearer_token": "token-1",
    }
    assert fake_identity[0].scopes == [(STORAGE_SCOPE,)]


def test_options_onelake_service_principal() -> None:
    credential = AzureCredentialConfig(
        type="service_principal", client_id="app-id", client_secret=CLIENT_SECRET, tenant_id="tenant-id"
    )
    options = storage(f"https://{ONELAKE_DFS}/{WS_GUID}/{ITEM_GUID}/Files/erp", credential).options()
    assert options == {
        "account_name": "onelake",
        "client_id": "app-id",
        "client_secret": CLIENT_SECRET,
        "tenant_id": "tenant-id",
        "use_fabric_endpoint": "true",
    }


def test_options_default_credential_bearer_token_from_token_source(
    fake_identity: list[FakeCredential],
) -> None:
    """With no credential configured, the azure-identity chain gives deltalake/polars a bearer token;
    the token is reused while it is valid."""
    s = storage(f"{ABFSS}/a")
    assert s.credential is not None and s.credential.kind == "default"
    assert s.options() == {"account_name": "acct", "bearer_token": "token-1"}
    assert s.options() == {"account_name": "acct", "bearer_token": "token-1"}
    assert fake_identity[0].calls == 1
    assert fake_identity[0].scopes == [(STORAGE_SCOPE,)]
    assert "token-1" not in repr(s)  # the cached bearer token stays out of reprs


def test_default_credential_with_user_assigned_identity(fake_identity: list[FakeCredential]) -> None:
    s = storage(f"{ABFSS}/a", AzureCredentialConfig(type="default", client_id="uami-id"))
    assert s.options() == {"account_name": "acct", "bearer_token": "token-1"}
    assert fake_identity[0].kwargs == {"managed_identity_client_id": "uami-id"}  # type: ignore[attr-defined]


def test_cli_credential_gives_bearer_token(fake_identity: list[FakeCredential]) -> None:
    s = storage(f"{ABFSS}/a", AzureCredentialConfig(type="cli"))
    assert s.options() == {"account_name": "acct", "bearer_token": "token-1"}


# --- 2. token refresh ------------------------------------------------------------------------------


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """A settable clock for TokenSource (the module's `time`, not the process-wide one)."""
    now = [1_700_000_000.0]
    monkeypatch.setattr(creds, "time", SimpleNamespace(time=lambda: now[0]))
    return now


def test_token_valid_for_an_hour_is_reused(clock: list[float]) -> None:
    credential = FakeCredential(lifetime=3600, clock=lambda: clock[0])
    source = TokenSource(credential)
    assert source.token() == "token-1"
    clock[0] += 3600 - REFRESH_MARGIN_SECONDS - 5  # still outside the margin
    assert source.token() == "token-1"
    assert credential.calls == 1


def test_token_within_the_margin_is_renewed(clock: list[float]) -> None:
    credential = FakeCredential(lifetime=3600, clock=lambda: clock[0])
    source = TokenSource(credential)
    assert source.token() == "token-1"
    clock[0] += 3600 - REFRESH_MARGIN_SECONDS + 1  # now inside the margin
    assert source.token() == "token-2"
    assert source.token() == "token-2"
    assert credential.calls == 2


def test_token_issued_already_within_the_margin_is_renewed_each_time(clock: list[float]) -> None:
    credential = FakeCredential(lifetime=REFRESH_MARGIN_SECONDS - 1, clock=lambda: clock[0])
    source = TokenSource(credential)
    assert [source.token(), source.token()] == ["token-1", "token-2"]


def test_concurrent_callers_share_one_renewal(clock: list[float]) -> None:
    """Many threads asking at once get a valid token; the credential is asked once per renewal."""
    credential = FakeCredential(lifetime=3600, delay=0.05, clock=lambda: clock[0])
    source = TokenSource(credential)

    def together(threads: int = 16) -> list[str]:
        barrier = threading.Barrier(threads)
        results: list[str] = [""] * threads

        def ask(index: int) -> None:
            barrier.wait()
            results[index] = source.token()

        workers = [threading.Thread(target=ask, args=(i,)) for i in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=30)
        return results

    assert together() == ["token-1"] * 16
    assert credential.calls == 1
    clock[0] += 3600 - REFRESH_MARGIN_SECONDS + 1
    assert together() == ["token-2"] * 16
    assert credential.calls == 2


# --- 3. configuration errors through load_project ---------------------------------------------------


def write_config(root: Path, project: dict[str, Any], flow: dict[str, Any]) -> Path:
    (root / "flows" / "f").mkdir(parents=True, exist_ok=True)
    (root / "hygge.yml").write_text(yaml.safe_dump({"name": "t", **project}))
    (root / "flows" / "f" / "flow.yml").write_text(yaml.safe_dump(flow))
    return root


def azure_flow(store: dict[str, Any], entities: list[Any] | None = None) -> dict[str, Any]:
    return {
        "home": {"type": "sql", "connection": "src"},
        "store": store,
        "run_type": "full_drop",
        "entities": entities or ["orders"],
    }


SQLITE = {"src": {"type": "sqlite", "path": "src.db"}}
ADLS = {"type": "adls", "account": "acct", "container": "landing", "path": "erp"}


def load_error(root: Path) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_project(root, env={})
    return info.value


def assert_names(
    error: ConfigError, *, file: Path, field: str, words: tuple[str, ...] | list[str] = ()
) -> str:
    text = str(error)
    assert error.context.file == str(file), text
    assert str(file) in text, text
    assert error.context.field == field, text
    assert f"field '{field}'" in text, text
    assert error.hint, f"no hint in: {text}"
    assert "Try: " in text, text
    for word in words:
        assert word in text, text
    return text


def test_unknown_credential_name_names_flow_entity_and_field(tmp_path: Path) -> None:
    root = write_config(
        tmp_path,
        {"connections": SQLITE, "credentials": {"landing": {"type": "managed_identity"}}},
        azure_flow({**ADLS, "credential": "landnig"}),
    )
    error = load_error(root)
    text = assert_names(
        error,
        file=root / "flows" / "f" / "flow.yml",
        field="store.credential",
        words=["unknown credential 'landnig'", "did you mean 'landing'"],
    )
    assert "flow 'f'" in text and "entity 'orders'" in text


def test_unknown_credential_name_set_in_an_entity_file_names_that_file(tmp_path: Path) -> None:
    root = write_config(
        tmp_path,
        {"connections": SQLITE, "credentials": {"landing": {"type": "managed_identity"}}},
        azure_flow(ADLS),
    )
    entity_file = root / "flows" / "f" / "entities" / "orders.yml"
    entity_file.parent.mkdir()
    entity_file.write_text(yaml.safe_dump({"store": {"credential": "nope"}}))
    error = load_error(root)
    text = assert_names(
        error, file=entity_file, field="store.credential", words=["unknown credential 'nope'"]
    )
    assert "flow 'f'" in text and "entity 'orders'" in text


def test_unknown_journal_credential_names_hygge_yml(tmp_path: Path) -> None:
    root = write_config(
        tmp_path,
        {
            "connections": SQLITE,
            "credentials": {"landing": {"type": "managed_identity"}},
            "journal": {"path": f"{ABFSS}/journal", "credential": "landin"},
        },
        azure_flow(ADLS),
    )
    assert_names(load_error(root), file=root / "hygge.yml", field="journal.credential", words=["'landing'"])


def test_unknown_credential_type(tmp_path: Path) -> None:
    root = write_config(
        tmp_path,
        {"connections": SQLITE, "credentials": {"landing": {"type": "password"}}},
        azure_flow({**ADLS, "credential": "landing"}),
    )
    assert_names(
        load_error(root),
        file=root / "hygge.yml",
        field="credentials.landing.type",
        words=["service_principal", "managed_identity"],
    )


def test_inline_credential_with_unknown_type_names_the_flow_file(tmp_path: Path) -> None:
    root = write_config(
        tmp_path, {"connections": SQLITE}, azure_flow({**ADLS, "credential": {"type": "msi"}})
    )
    assert_names(
        load_error(root),
        file=root / "flows" / "f" / "flow.yml",
        field="store.credential.type",
        words=["managed_identity"],
    )


def test_service_principal_without_client_secret(tmp_path: Path) -> None:
    root = write_config(
        tmp_path,
        {
            "connections": SQLITE,
            "credentials": {"sp": {"type": "service_principal", "client_id": "app", "tenant_id": "tenant"}},
        },
        azure_flow({**ADLS, "credential": "sp"}),
    )
    assert_names(load_error(root), file=root / "hygge.yml", field="credentials.sp", words=["client_secret"])


def test_adls_store_without_container(tmp_path: Path) -> None:
    store = {k: v for k, v in ADLS.items() if k != "container"}
    root = write_config(tmp_path, {"connections": SQLITE}, azure_flow(store))
    text = assert_names(load_error(root), file=root / "flows" / "f" / "flow.yml", field="store.container")
    assert "flow 'f'" in text and "entity 'orders'" in text


@pytest.mark.parametrize(
    ("store", "field", "words"),
    [
        pytest.param(
            {"type": "onelake", "workspace": "Sales", "item": "Landing", "path": "Files/erp"},
            "store.item",
            ["Landing", "Sales.Lakehouse", "GUID"],
            id="untyped-item",
        ),
        pytest.param(
            {"type": "onelake", "workspace": "Sales", "item": "Landing.Lakehouse", "path": "Files"},
            "store.path",
            ["Files/"],
            id="at-files-level",
        ),
        pytest.param(
            {"type": "onelake", "workspace": "Sales", "item": "Landing.Lakehouse", "path": "erp"},
            "store.path",
            ["Files/"],
            id="no-files-level",
        ),
    ],
)
def test_onelake_store_with_malformed_location(
    tmp_path: Path, store: dict[str, Any], field: str, words: list[str]
) -> None:
    """A malformed OneLake store is reported when the project loads, not when a run first touches it."""
    root = write_config(tmp_path, {"connections": SQLITE}, azure_flow(store))
    text = assert_names(load_error(root), file=root / "flows" / "f" / "flow.yml", field=field, words=words)
    assert "flow 'f'" in text and "entity 'orders'" in text


def test_valid_onelake_store_resolves(tmp_path: Path, fake_identity: list[FakeCredential]) -> None:
    store = {"type": "onelake", "workspace": WS_GUID, "item": ITEM_GUID, "path": "/Files/erp/"}
    root = write_config(tmp_path, {"connections": SQLITE}, azure_flow(store))
    project = load_project(root, env={})
    entity = project.flows["f"].entities[0]
    root_storage = store_root(entity, project.root)
    assert root_storage.location.kind == "onelake"
    assert root_storage.uri == f"abfss://{WS_GUID}@{ONELAKE_DFS}/{ITEM_GUID}/Files/erp"


def test_named_credential_is_resolved_at_load_time(tmp_path: Path) -> None:
    root = write_config(
        tmp_path,
        {"connections": SQLITE, "credentials": {"key": {"type": "account_key", "account_key": ACCOUNT_KEY}}},
        azure_flow({**ADLS, "credential": "key"}),
    )
    entity = load_project(root, env={}).flows["f"].entities[0]
    assert isinstance(entity.store.credential, AzureCredentialConfig)
    assert entity.store.credential.account_key.get_secret_value() == ACCOUNT_KEY  # type: ignore[union-attr]


# --- 4. failures against a real Azurite --------------------------------------------------------------


@pytest.fixture
def short_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep object_store's retries short: a failing test must not wait a minute."""
    import datetime as dt

    from hygge.storage import objects

    monkeypatch.setattr(objects, "_RETRY", {"max_retries": 1, "retry_timeout": dt.timedelta(seconds=5)})


def azurite_project(root: Path, info: Any, container: str, fmt: str, key: str) -> Path:
    db = root / "src.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, amount REAL)")
        conn.executemany("INSERT INTO items VALUES (?, ?, ?)", [(i, f"n{i}", i * 1.5) for i in range(1, 6)])
    store = {
        "type": "adls",
        "format": fmt,
        "account": info.account,
        "container": container,
        "path": "lake",
        "endpoint": info.blob_endpoint,
        "credential": "azurite",
    }
    return write_config(
        root,
        {"connections": SQLITE, "credentials": {"azurite": {"type": "account_key", "account_key": key}}},
        azure_flow(store, ["items"]),
    )


def land(root: Path) -> Any:
    from hygge.runner import RunIds, land_entity

    project = load_project(root, env={})
    return land_entity(project, project.flows["f"].entities[0], RunIds("p", "c", "f"))


def blobs(info: Any, container: str) -> list[str]:
    """Every blob in the container, read with the right key (the container must exist)."""
    from obstore.store import AzureStore

    store = AzureStore(container_name=container, config=info.storage_options)
    return [item["path"] for chunk in obstore.list(store) for item in chunk]


WRONG_KEY = base64.b64encode(b"certainly-not-the-azurite-key-4711!").decode()


def files_under(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_size for p in root.rglob("*") if p.is_file()}


def assert_one_store_error(error: HyggeError, place: str) -> str:
    """One StoreError naming the store's location (in its own message, not only in the journal's
    follow-up failure), the flow and entity, and a hint; no traceback or retry wrapper."""
    text = str(error)
    assert error.kind == "store", text
    own = error.message.split(" (and the failure could not be journaled")[0]
    assert f"{place}/lake/items" in own or f"{place}/lake/.hygge_journal" in own, text  # entity lease first
    assert "entity 'items'" in text and "flow 'f'" in text, text
    assert error.hint and "Try: " in text, text
    assert not error.transient, text  # retrying cannot fix a key or a container
    assert "Traceback" not in text and "RetryError[" not in text, text
    return text


@pytest.mark.parametrize("fmt", ["parquet", "delta"])
def test_wrong_account_key_fails_with_one_clear_store_error(
    tmp_path: Path, azure_container: Any, short_retries: None, fmt: str
) -> None:
    info, container = azure_container
    root = azurite_project(tmp_path, info, container, fmt, WRONG_KEY)
    before = files_under(root)
    started = time.monotonic()
    with pytest.raises(HyggeError) as caught:
        land(root)
    assert time.monotonic() - started < 30  # refused at once, not retried
    error = caught.value
    text = assert_one_store_error(error, f"{info.blob_endpoint}/{container}")
    assert "check the account key" in (error.hint or ""), text
    assert WRONG_KEY not in text and WRONG_KEY not in repr(error)
    assert blobs(info, container) == []  # nothing written, not even a journal row
    assert files_under(root) == before  # and nothing locally either


@pytest.mark.parametrize("fmt", ["parquet", "delta"])
def test_missing_container_fails_telling_to_create_it(
    tmp_path: Path, azure_container: Any, short_retries: None, fmt: str
) -> None:
    info, container = azure_container
    missing = f"{container}x"
    root = azurite_project(tmp_path, info, missing, fmt, info.key)
    before = files_under(root)
    with pytest.raises(HyggeError) as caught:
        land(root)
    error = caught.value
    text = assert_one_store_error(error, f"{info.blob_endpoint}/{missing}")
    assert "create the container" in (error.hint or ""), text
    assert info.key not in text
    # hygge never creates containers, and wrote nothing anywhere else.
    assert not container_exists(info, missing)
    assert blobs(info, container) == []
    assert files_under(root) == before


@pytest.mark.parametrize("fmt", ["parquet", "delta"])
def test_connection_string_alone_reaches_azurite(tmp_path: Path, azure_container: Any, fmt: str) -> None:
    """A store given only account, container and an Azurite connection string (no `endpoint:`) lands:
    the connection string's http BlobEndpoint is used, with http allowed."""
    info, container = azure_container
    root = azurite_project(tmp_path, info, container, fmt, info.key)
    flow_file = root / "flows" / "f" / "flow.yml"
    flow = yaml.safe_load(flow_file.read_text())
    del flow["store"]["endpoint"]
    flow_file.write_text(yaml.safe_dump(flow))
    raw = yaml.safe_load((root / "hygge.yml").read_text())
    raw["credentials"]["azurite"] = {"type": "connection_string", "connection_string": info.connection_string}
    (root / "hygge.yml").write_text(yaml.safe_dump(raw))
    assert land(root).rows == 5
    project = load_project(root, env={})
    store = make_store(project.flows["f"].entities[0], project.root)
    assert store.describe() == f"{fmt} {info.blob_endpoint}/{container}/lake/items"
    assert sorted(store.scan().column("id").to_pylist()) == [1, 2, 3, 4, 5]
    assert any(path.startswith("lake/.hygge_journal/") for path in blobs(info, container))


def container_exists(info: Any, name: str) -> bool:
    from obstore.exceptions import BaseError

    try:
        blobs(info, name)
    except BaseError as exc:
        if "ContainerNotFound" in str(exc):
            return False
        raise
    return True


# --- 5. secrets stay out of text ----------------------------------------------------------------------


def secret_credentials() -> dict[str, AzureCredentialConfig]:
    return {
        "key": AzureCredentialConfig(type="account_key", account_key=ACCOUNT_KEY),
        "sas": AzureCredentialConfig(type="sas", sas_token=f"?{SAS}"),
        "sp": AzureCredentialConfig(
            type="service_principal", client_id="app", tenant_id="tenant", client_secret=CLIENT_SECRET
        ),
        "cs": AzureCredentialConfig(
            type="connection_string",
            connection_string=f"AccountName=acct;AccountKey={ACCOUNT_KEY};EndpointSuffix=core.windows.net",
        ),
    }


SECRETS = (ACCOUNT_KEY, SAS_SIGNATURE, CLIENT_SECRET)


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret[:12] not in text, text  # nor a recognisable part of it


@pytest.mark.parametrize("name", ["key", "sas", "sp", "cs"])
def test_secrets_not_in_reprs_or_descriptions(tmp_path: Path, name: str) -> None:
    config = secret_credentials()[name]
    assert_no_secret(repr(config))
    assert_no_secret(str(config))
    assert_no_secret(repr(RemoteSettings(credential=config)))
    s = storage(f"{ABFSS}/a", config)
    assert_no_secret(s.describe())
    assert_no_secret(repr(s))
    assert_no_secret(repr(s.location))

    # The same credential named in hygge.yml, with its real values, loaded as a user's run would.
    plain = {
        k: (v.get_secret_value() if hasattr(v, "get_secret_value") else v)
        for k, v in config.model_dump(exclude_none=True).items()
    }
    root = write_config(
        tmp_path,
        {"connections": SQLITE, "credentials": {name: plain}},
        azure_flow({**ADLS, "credential": name}),
    )
    project = load_project(root, env={})
    entity = project.flows["f"].entities[0]
    assert_no_secret(repr(project.config))
    assert_no_secret(repr(entity))
    for fmt in ("parquet", "delta"):
        store = make_store(
            entity.model_copy(update={"store": entity.store.model_copy(update={"format": fmt})})
        )
        assert_no_secret(store.describe())


@pytest.mark.parametrize("fmt", ["parquet", "delta"])
def test_secret_not_in_error_text_from_a_real_failure(
    tmp_path: Path, azure_container: Any, short_retries: None, fmt: str
) -> None:
    """A SAS that Azurite refuses: the failure names the place and the credential, never the signature."""
    info, container = azure_container
    root = azurite_project(tmp_path, info, container, fmt, info.key)
    raw = yaml.safe_load((root / "hygge.yml").read_text())
    raw["credentials"]["azurite"] = {"type": "sas", "sas_token": f"?{SAS}"}
    (root / "hygge.yml").write_text(yaml.safe_dump(raw))
    with pytest.raises(HyggeError) as caught:
        land(root)
    error = caught.value
    assert_one_store_error(error, f"{info.blob_endpoint}/{container}")
    assert "credential" in (error.hint or "")
    assert_no_secret(str(error))
    assert_no_secret(repr(error))


def test_storage_error_masks_secrets_in_the_cause() -> None:
    from hygge.storage import storage_error

    s = storage(f"{ABFSS}/a", secret_credentials()["sp"])
    error = storage_error(s, "writing x in", RuntimeError(f"refused client_secret={CLIENT_SECRET} (403)"))
    assert_no_secret(str(error))
    assert "refused" in str(error) and f"{ABFSS}/a" in str(error)
