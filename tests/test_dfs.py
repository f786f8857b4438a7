"""HNS folder operations: Storage.delete_folder / Storage.rename_folder (hygge/storage/dfs.py).

ADLS Gen2 and OneLake are reached through the DFS SDK (azure-storage-file-datalake). No DFS endpoint
can run on this machine (Azurite serves the Blob API only: DFS calls fail with HTTP 400), so those
tests run against tests/fake_dfs.py, an in-memory stand-in that implements the ADLS Gen2 REST calls
the SDK sends (and records them, so the tests also pin what goes over the wire). Local folders and the
Azurite fallback (object by object through obstore) are tested for real.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.core.credentials import AccessToken
from fake_dfs import FakeDfs, running_fake_dfs

from hygge.config.models import AzureCredentialConfig, RemoteSettings
from hygge.errors import ConfigError, StoreError
from hygge.storage import Location, Storage, dfs
from hygge.storage.credentials import ResolvedCredential, TokenSource

KEY = "c2VjcmV0LWtleS1mb3ItaHlnZ2UtdGVzdHMtb25seQ=="  # base64, like a real account key
SAS = "sv=2024-11-04&ss=b&srt=co&sp=rwdlac&se=2030-01-01T00:00:00Z&sig=VGhpc0lzVGhlU2VjcmV0U2lnbmF0dXJl"
SIG = "VGhpc0lzVGhlU2VjcmV0U2lnbmF0dXJl"
ITEM = "Sales.Lakehouse"


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """One quick retry instead of the SDK's 15 s back-off."""
    monkeypatch.setattr(
        dfs,
        "CLIENT_OPTIONS",
        {"retry_total": 1, "initial_backoff": 0, "increment_base": 0, "random_jitter_range": 0},
    )


@pytest.fixture
def fake() -> Iterator[FakeDfs]:
    with running_fake_dfs(account="fakeacct") as server:
        server.create_filesystem("fs")
        yield server


def adls(fake: FakeDfs, path: str = "landing", *, sas: bool = False) -> Storage:
    credential = (
        AzureCredentialConfig(type="sas", sas_token=SAS)
        if sas
        else AzureCredentialConfig(type="account_key", account_key=KEY)
    )
    settings = RemoteSettings(account=fake.account, endpoint=fake.endpoint, credential=credential)
    return Storage.at(f"az://fs/{path}", None, settings)


class StubTokenCredential:
    """Stands in for DefaultAzureCredential / AzureCliCredential (hands out a fixed token)."""

    def __init__(self) -> None:
        self.calls = 0

    def get_token(self, *scopes: str, **kwargs: object) -> AccessToken:
        self.calls += 1
        return AccessToken("stub-bearer-token", int(time.time()) + 3600)


def onelake(fake: FakeDfs, path: str = "", credential: ResolvedCredential | None = None) -> Storage:
    location = Location("onelake", path, account="onelake", container="ws", endpoint=fake.endpoint)
    return Storage(
        location, credential or ResolvedCredential("account_key", {"account_key": KEY}, secrets=(KEY,))
    )


def seed(fake: FakeDfs, fs: str = "fs", root: str = "landing") -> None:
    fake.put_file(fs, f"{root}/t1/00000000000000000001.parquet", b"one")
    fake.put_file(fs, f"{root}/t1/sub/deeper/00000000000000000002.parquet", b"two")
    fake.put_file(fs, f"{root}/t1/_metadata.json", b"{}")
    fake.put_file(fs, f"{root}/t2/keep.parquet", b"keep")


# --- ADLS Gen2 through the DFS SDK ---------------------------------------------------------------
def test_delete_folder_removes_the_nested_tree_in_one_call(fake: FakeDfs) -> None:
    seed(fake)
    storage = adls(fake)
    assert not dfs.blob_only(storage)

    storage.delete_folder("t1")

    assert fake.paths("fs") == {
        "landing": "directory",
        "landing/t2": "directory",
        "landing/t2/keep.parquet": "file",
    }
    assert fake.log() == [
        "DELETE /fs/landing/t1?recursive=true [SharedKey] x-ms-version: " + _version(fake) + " -> 200"
    ]


def test_deleting_a_missing_folder_is_fine(fake: FakeDfs) -> None:
    seed(fake)
    adls(fake).delete_folder("never/was")
    assert [r.status for r in fake.requests] == [404]
    assert "landing/t1/_metadata.json" in fake.paths("fs")


def test_a_missing_container_is_an_error(fake: FakeDfs) -> None:
    storage = Storage.at(
        "az://nofs/landing",
        None,
        RemoteSettings(
            account=fake.account,
            endpoint=fake.endpoint,
            credential=AzureCredentialConfig(type="account_key", account_key=KEY),
        ),
    )
    with pytest.raises(StoreError, match="FilesystemNotFound") as info:
        storage.delete_folder("t1")
    assert "create the container" in str(info.value)
    assert not info.value.transient


def test_rename_moves_every_child_and_creates_the_missing_parent(fake: FakeDfs) -> None:
    seed(fake)
    storage = adls(fake)

    storage.rename_folder("t1", "archive/2024/t1")

    assert fake.paths("fs", "landing") == {
        "landing/archive": "directory",
        "landing/archive/2024": "directory",
        "landing/archive/2024/t1": "directory",
        "landing/archive/2024/t1/00000000000000000001.parquet": "file",
        "landing/archive/2024/t1/_metadata.json": "file",
        "landing/archive/2024/t1/sub": "directory",
        "landing/archive/2024/t1/sub/deeper": "directory",
        "landing/archive/2024/t1/sub/deeper/00000000000000000002.parquet": "file",
        "landing/t2": "directory",
        "landing/t2/keep.parquet": "file",
    }
    assert fake.read("fs", "landing/archive/2024/t1/sub/deeper/00000000000000000002.parquet") == b"two"
    calls = [
        (r.method, r.path, r.query, r.headers.get("x-ms-rename-source"), r.status) for r in fake.requests
    ]
    assert calls == [
        ("PUT", "fs/landing/archive/2024/t1", {"mode": "legacy"}, "/fs/landing/t1", 404),
        ("PUT", "fs/landing/archive/2024", {"resource": "directory"}, None, 201),
        ("PUT", "fs/landing/archive/2024/t1", {"mode": "legacy"}, "/fs/landing/t1", 201),
    ]
    assert all(r.headers.get("if-none-match") == "*" for r in fake.requests)


def test_rename_into_an_existing_parent_is_one_call(fake: FakeDfs) -> None:
    seed(fake)
    adls(fake).rename_folder("t1", "t1_old")
    assert len(fake.requests) == 1
    assert "landing/t1_old/sub/deeper/00000000000000000002.parquet" in fake.paths("fs")
    assert "landing/t1" not in fake.paths("fs")


def test_rename_refuses_an_existing_destination(fake: FakeDfs) -> None:
    seed(fake)
    with pytest.raises(StoreError, match="'landing/t2' already exists"):
        adls(fake).rename_folder("t1", "t2")
    assert "landing/t1/_metadata.json" in fake.paths("fs")
    assert "landing/t2/keep.parquet" in fake.paths("fs")


def test_rename_of_a_missing_folder_is_an_error(fake: FakeDfs) -> None:
    with pytest.raises(StoreError, match="'landing/nope' does not exist"):
        adls(fake).rename_folder("nope", "other")


def test_rename_into_itself_is_refused(fake: FakeDfs) -> None:
    seed(fake)
    with pytest.raises(ConfigError, match="inside it"):
        adls(fake).rename_folder("t1", "t1/inner")
    assert fake.requests == []


def test_a_retried_rename_that_already_went_through_is_done(fake: FakeDfs) -> None:
    """The SDK retries a rename whose response was lost; the source is then gone, the target there."""
    seed(fake)
    storage = adls(fake)
    storage.rename_folder("t1", "moved")  # the first attempt, whose answer "was lost"
    fake.requests.clear()
    storage.rename_folder("t1", "moved")  # the retry: 404 SourcePathNotFound, but the target exists
    assert [(r.method, r.status) for r in fake.requests] == [("PUT", 404), ("HEAD", 200)]


def test_the_root_of_a_container_is_never_touched(fake: FakeDfs) -> None:
    with pytest.raises(ConfigError, match="root of container 'fs'"):
        adls(fake, "").delete_folder("")
    with pytest.raises(ConfigError, match=r"'\.\.'"):
        adls(fake).delete_folder("../landing")
    assert fake.requests == []


# --- failures become StoreErrors without secrets --------------------------------------------------
@pytest.mark.parametrize("sas", [False, True], ids=["account_key", "sas"])
def test_a_refused_credential_is_a_store_error_naming_the_place(fake: FakeDfs, sas: bool) -> None:
    seed(fake)
    fake.inject("fs/landing/t1", 403, "AuthorizationPermissionMismatch")
    storage = adls(fake, sas=sas)

    with pytest.raises(StoreError) as info:
        storage.delete_folder("t1")

    text = str(info.value)
    assert storage.describe() in text  # the location: <endpoint>/fs/landing
    assert "HTTP 403 AuthorizationPermissionMismatch" in text
    assert "credential was refused" in text
    assert not info.value.transient
    for secret in (KEY, SAS, SIG):
        assert secret not in text
    assert fake.requests[-1].auth == ("sas" if sas else "SharedKey")
    with pytest.raises(StoreError, match="HTTP 403"):
        storage.rename_folder("t1", "elsewhere")
    assert "landing/t1/_metadata.json" in fake.paths("fs")


def test_server_errors_are_transient_and_retried(fake: FakeDfs) -> None:
    seed(fake)
    fake.inject("fs/landing/t1", 503, "ServerBusy", times=1)
    adls(fake).delete_folder("t1")  # the SDK's retry gets through
    assert [r.status for r in fake.requests] == [503, 200]

    fake.requests.clear()
    fake.inject("fs/landing/t2", 500, "InternalError")
    with pytest.raises(StoreError) as info:
        adls(fake).delete_folder("t2")
    assert info.value.transient
    assert "HTTP 500 InternalError" in str(info.value)
    assert [r.status for r in fake.requests] == [500, 500]  # first try and one retry


def test_an_unreachable_endpoint_is_transient_and_masks_the_sas(fake: FakeDfs) -> None:
    storage = adls(fake, sas=True)
    fake.stop()
    with pytest.raises(StoreError) as info:
        storage.delete_folder("t1")
    assert info.value.transient
    assert SIG not in str(info.value)
    assert storage.describe() in str(info.value)


def test_secrets_in_sdk_messages_are_masked(fake: FakeDfs) -> None:
    """The SDK and requests quote request URLs in some errors: a SAS there must not reach the user."""
    from azure.core.exceptions import ServiceRequestError

    storage = adls(fake, sas=True)
    quoted = f"Max retries exceeded with url: /fakeacct/fs/landing/t1?recursive=true&{SAS}"
    err = dfs._error(storage, "deleting folder 'landing/t1' in", ServiceRequestError(quoted))
    other = dfs._error(
        storage, "deleting", ServiceRequestError("url: /x?sv=2024-11-04&sig=AnotherSignature%3D")
    )
    assert SIG not in str(err) and "********" in str(err)
    assert "AnotherSignature" not in str(other)
    assert err.transient


# --- OneLake -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "path",
    ["", ITEM, f"{ITEM}/Files", f"{ITEM}/Tables", f"{ITEM}/Files/", "Other.Warehouse/Notes/x"],
)
def test_onelake_guardrail_refuses_managed_levels(fake: FakeDfs, path: str) -> None:
    storage = onelake(fake)
    with pytest.raises(ConfigError, match="refusing to delete") as info:
        storage.delete_folder(path)
    assert f"'ws/{path.strip('/')}'".replace("/'", "'") in str(info.value)
    assert "Files/ or <item>/Tables/" in str(info.value)
    with pytest.raises(ConfigError, match="refusing to rename"):
        storage.rename_folder(path, f"{ITEM}/Files/elsewhere")
    with pytest.raises(ConfigError, match="refusing to rename to"):
        storage.rename_folder(f"{ITEM}/Files/landing", path)
    assert fake.requests == []


def test_onelake_folders_below_files_are_deleted_and_renamed(fake: FakeDfs) -> None:
    fake.create_filesystem("ws")
    fake.mkdir("ws", f"{ITEM}/Files")
    fake.put_file("ws", f"{ITEM}/Files/LandingZone/dbo.schema/orders/00000000000000000001.parquet", b"x")
    storage = onelake(fake, f"{ITEM}/Files/LandingZone")

    storage.rename_folder("dbo.schema/orders", "_drop/orders")
    assert fake.paths("ws", f"{ITEM}/Files/LandingZone/_drop") == {
        f"{ITEM}/Files/LandingZone/_drop/orders": "directory",
        f"{ITEM}/Files/LandingZone/_drop/orders/00000000000000000001.parquet": "file",
    }
    storage.delete_folder("_drop")
    assert fake.paths("ws") == {
        ITEM: "directory",
        f"{ITEM}/Files": "directory",
        f"{ITEM}/Files/LandingZone": "directory",
        f"{ITEM}/Files/LandingZone/dbo.schema": "directory",
    }


def test_onelake_never_creates_the_files_level(fake: FakeDfs) -> None:
    """A rename whose destination parent is <item>/Files itself must not try to create it."""
    fake.create_filesystem("ws")
    fake.put_file("ws", "Other.Lakehouse/Files/a/b.parquet", b"x")  # Sales.Lakehouse does not exist
    with pytest.raises(StoreError, match="RenameDestinationParentPathNotFound"):
        onelake(fake).rename_folder("Other.Lakehouse/Files/a", f"{ITEM}/Files/a")
    assert [r.method for r in fake.requests] == ["PUT", "PUT"]  # two renames, no directory create
    assert all("x-ms-rename-source" in r.headers for r in fake.requests)


def test_token_credentials_use_bearer_tokens_and_paginated_delete(monkeypatch: pytest.MonkeyPatch) -> None:
    """default/cli credentials: the azure-identity credential already held (HTTPS only, as the SDK
    demands for tokens; the fake serves a self-signed certificate that requests is told to trust)."""
    with running_fake_dfs(account="onelake", tls=True) as fake:
        assert fake.ca_file
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", fake.ca_file)
        fake.create_filesystem("ws")
        fake.put_file("ws", f"{ITEM}/Files/landing/t1/a.parquet", b"a")
        token = StubTokenCredential()
        storage = onelake(
            fake, f"{ITEM}/Files/landing", ResolvedCredential("default", {}, TokenSource(token))
        )

        storage.rename_folder("t1", "t1_old")
        storage.delete_folder("t1_old")

        assert fake.paths("ws", f"{ITEM}/Files/landing") == {}
        log = fake.log()
        assert log[0].startswith(f"PUT /ws/{ITEM}/Files/landing/t1_old?mode=legacy [Bearer]")
        assert log[1].startswith(
            f"DELETE /ws/{ITEM}/Files/landing/t1_old?paginated=true&recursive=true [Bearer]"
        )
        assert token.calls >= 1


def test_token_credentials_over_plain_http_are_a_config_error(fake: FakeDfs) -> None:
    storage = onelake(
        fake, f"{ITEM}/Files/x", ResolvedCredential("default", {}, TokenSource(StubTokenCredential()))
    )
    with pytest.raises(ConfigError, match="HTTPS"):
        storage.delete_folder("t1")


def test_the_fake_lists_paths_as_the_sdk_expects(fake: FakeDfs) -> None:
    """Filesystem - List Paths through the SDK, with continuation tokens (for later listing users)."""
    from azure.storage.filedatalake import DataLakeServiceClient

    seed(fake)
    service = DataLakeServiceClient(
        fake.endpoint, credential={"account_name": fake.account, "account_key": KEY}
    )
    with service:
        client = service.get_file_system_client("fs")
        found = [
            (p.name, p.is_directory) for p in client.get_paths("landing/t1", recursive=True, max_results=2)
        ]
        top = [p.name for p in client.get_paths("landing", recursive=False)]
    assert found == [
        ("landing/t1/00000000000000000001.parquet", False),
        ("landing/t1/_metadata.json", False),
        ("landing/t1/sub", True),
        ("landing/t1/sub/deeper", True),
        ("landing/t1/sub/deeper/00000000000000000002.parquet", False),
    ]
    assert top == ["landing/t1", "landing/t2"]
    assert sum(r.query.get("continuation") is not None for r in fake.requests) == 2


# --- clients -------------------------------------------------------------------------------------
def test_account_urls() -> None:
    key = ResolvedCredential("account_key", {"account_key": KEY})
    azure = Storage(Location("azure", "p", account="acct", container="c"), key)
    assert dfs.account_url(azure) == "https://acct.dfs.core.windows.net"
    lake = Storage(Location("onelake", f"{ITEM}/Files", account="onelake", container="ws"), key)
    assert dfs.account_url(lake) == "https://onelake.dfs.fabric.microsoft.com"
    custom = Storage(
        Location("azure", "p", account="acct", container="c", endpoint="https://acct.blob.core.windows.net"),
        key,
    )
    assert dfs.account_url(custom) == "https://acct.dfs.core.windows.net"


def test_credentials_map_to_the_sdk() -> None:
    from azure.identity import ClientSecretCredential, ManagedIdentityCredential

    location = Location("azure", "p", account="acct", container="c")
    key = dfs._credential(Storage(location, ResolvedCredential("account_key", {"account_key": KEY})))
    assert key == {"account_name": "acct", "account_key": KEY}
    assert dfs._credential(Storage(location, ResolvedCredential("sas", {"sas_key": SAS}))) == SAS
    sp = ResolvedCredential(
        "service_principal", {"client_id": "app", "client_secret": "s3cret", "tenant_id": "t"}
    )
    assert isinstance(dfs._credential(Storage(location, sp)), ClientSecretCredential)
    mi = ResolvedCredential("managed_identity", {"client_id": "00000000-0000-0000-0000-000000000001"})
    assert isinstance(dfs._credential(Storage(location, mi)), ManagedIdentityCredential)
    held = StubTokenCredential()
    assert dfs._credential(Storage(location, ResolvedCredential("cli", {}, TokenSource(held)))) is held


# --- local folders -------------------------------------------------------------------------------
def test_local_delete_and_rename(tmp_path: Path) -> None:
    storage = Storage.local(tmp_path)
    for name in ("t1/a.parquet", "t1/sub/b.parquet", "t2/c.parquet"):
        storage.put(name, name.encode())

    storage.rename_folder("t1", "archive/t1")
    assert storage.get("archive/t1/sub/b.parquet") == b"t1/sub/b.parquet"
    assert not (tmp_path / "t1").exists()

    storage.delete_folder("archive")
    storage.delete_folder("archive")  # missing: fine
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == ["t2", "t2/c.parquet"]


def test_local_rename_refusals(tmp_path: Path) -> None:
    storage = Storage.local(tmp_path)
    storage.put("t1/a", b"a")
    storage.put("t2/b", b"b")
    with pytest.raises(StoreError, match="'t2' already exists"):
        storage.rename_folder("t1", "t2")
    with pytest.raises(StoreError, match="'nope' does not exist"):
        storage.rename_folder("nope", "t3")
    with pytest.raises(ConfigError, match="inside it"):
        storage.rename_folder("t1", "t1/deeper")
    with pytest.raises(ConfigError, match=r"'\.\.'"):
        storage.delete_folder("../outside")
    assert storage.get("t1/a") == b"a"


# --- Azurite: Blob API only, object by object ------------------------------------------------------
def test_azurite_falls_back_to_objects(azure_container) -> None:
    info, container = azure_container
    storage = Storage.at(
        f"az://{container}/x",
        None,
        RemoteSettings(
            account=info.account,
            endpoint=info.blob_endpoint,
            credential=AzureCredentialConfig(type="account_key", account_key=info.key),
        ),
    )
    assert dfs.blob_only(storage)
    for name in ("t1/a.parquet", "t1/sub/b.parquet", "t2/c.parquet", "t10/d.parquet"):
        storage.put(name, name.encode())

    storage.rename_folder("t1", "archive/t1")
    assert sorted(o["path"] for o in storage.list()) == [
        "archive/t1/a.parquet",
        "archive/t1/sub/b.parquet",
        "t10/d.parquet",
        "t2/c.parquet",
    ]
    assert storage.get("archive/t1/sub/b.parquet") == b"t1/sub/b.parquet"
    with pytest.raises(StoreError, match="already exists"):
        storage.rename_folder("t2", "t10")
    with pytest.raises(StoreError, match="does not exist"):
        storage.rename_folder("t1", "t3")

    storage.delete_folder("archive")
    storage.delete_folder("archive")  # missing: fine
    storage.delete_folder("t1")  # a prefix of t10, which must survive
    assert sorted(o["path"] for o in storage.list()) == ["t10/d.parquet", "t2/c.parquet"]


def _version(fake: FakeDfs) -> str:
    return fake.requests[0].headers["x-ms-version"]
