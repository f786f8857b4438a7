"""Parse a configured location (local path, ADLS Gen2, OneLake, Azurite) into its parts.

The one place that understands Azure URL forms; everything else asks a Location for what it needs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

from hygge.errors import ConfigError

ONELAKE_HOST = "onelake"
ONELAKE_DFS = "onelake.dfs.fabric.microsoft.com"
ONELAKE_BLOB = "onelake.blob.fabric.microsoft.com"
ONELAKE_FOLDERS = ("Files", "Tables")
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_ACCOUNT_HOST = re.compile(r"^(?P<account>[a-z0-9]{3,24})\.(?P<service>dfs|blob)\.core\.windows\.net$")


@dataclass(frozen=True)
class Location:
    """Where data lives: a local folder, or an Azure container (or OneLake workspace) and a path."""

    kind: str  # local | azure | onelake
    path: str  # local: absolute folder; azure/onelake: path inside the container, no leading '/'
    account: str | None = None
    container: str | None = None  # OneLake: the workspace (name or GUID)
    endpoint: str | None = None  # Azurite or another custom blob endpoint

    @property
    def is_local(self) -> bool:
        return self.kind == "local"

    def child(self, *parts: str) -> Location:
        joined = str(PurePosixPath(self.path, *parts)) if self.path else "/".join(parts)
        if self.is_local:
            joined = str(Path(self.path, *parts))
        return replace(self, path=joined)

    def parent(self) -> Location:
        """The folder holding this one (a container's top stays the top)."""
        if self.is_local:
            return replace(self, path=str(Path(self.path).parent))
        up = str(PurePosixPath(self.path).parent)
        return replace(self, path="" if up == "." else up)

    @property
    def url(self) -> str:
        """The URL deltalake and polars take for this place."""
        if self.is_local:
            return self.path
        # Always abfss (with `endpoint` overriding the host for Azurite): deltalake 1.x commits after
        # version 0 fail on az:// URLs ("Invalid table version"; delta-rs issue 3824).
        host = ONELAKE_DFS if self.kind == "onelake" else f"{self.account}.dfs.core.windows.net"
        return f"abfss://{self.container}@{host}/{self.path}".rstrip("/")

    def describe(self) -> str:
        if self.is_local:
            return self.path
        if self.endpoint:
            return f"{self.endpoint}/{self.container}/{self.path}"
        return self.url


def parse_location(
    text: str, base: Path | None = None, *, account: str | None = None, endpoint: str | None = None
) -> Location:
    """Turn a configured location into a Location; `account`/`endpoint` complete `az://` forms."""
    raw = text.strip()
    if "://" not in raw or raw.startswith("file://"):
        path = Path(raw.removeprefix("file://"))
        if not path.is_absolute() and base is not None:
            path = base / path
        return Location("local", str(path.resolve()))
    parsed = urlparse(raw)
    scheme = parsed.scheme.lower()
    host = (parsed.hostname or "").lower()
    parts = [p for p in parsed.path.split("/") if p]
    if scheme in ("abfs", "abfss"):
        if "@" not in parsed.netloc:
            raise _bad(raw, "abfss URLs look like abfss://<container>@<account>.dfs.core.windows.net/<path>")
        container = parsed.netloc.split("@", 1)[0]
        return _azure_or_onelake(raw, host, container, parts)
    if scheme == "https":
        if not parts:
            raise _bad(raw, "name the container (or OneLake workspace) after the host")
        return _azure_or_onelake(raw, host, parts[0], parts[1:])
    if scheme in ("az", "azure"):
        container = parsed.netloc
        if not container:
            raise _bad(raw, "az URLs look like az://<container>/<path>")
        if not account and not endpoint:
            raise _bad(raw, "an az:// location needs `account:` (or `endpoint:` for Azurite)")
        return Location("azure", "/".join(parts), account=account, container=container, endpoint=endpoint)
    raise _bad(raw, "use a local path, abfss://, https:// (ADLS Gen2 or OneLake) or az://")


def _azure_or_onelake(raw: str, host: str, container: str, parts: list[str]) -> Location:
    if host in (ONELAKE_DFS, ONELAKE_BLOB):
        _check_onelake(raw, container, parts)
        return Location("onelake", "/".join(parts), account=ONELAKE_HOST, container=container)
    match = _ACCOUNT_HOST.match(host)
    if not match:
        raise _bad(
            raw,
            "the host must be <account>.dfs.core.windows.net, <account>.blob.core.windows.net "
            f"or {ONELAKE_DFS}",
        )
    if not container:
        raise _bad(raw, "name the container")
    return Location("azure", "/".join(parts), account=match["account"], container=container)


def _check_onelake(raw: str, workspace: str, parts: list[str]) -> None:
    """OneLake locations sit below <workspace>/<item>/Files|Tables/: those levels are never touched."""
    if not workspace:
        raise _bad(raw, "name the workspace (name or GUID) after the host")
    if len(parts) < 3 or parts[1] not in ONELAKE_FOLDERS:
        raise _bad(
            raw,
            "OneLake locations look like https://onelake.dfs.fabric.microsoft.com/<workspace>/<item>/Files/<folder> "
            "(item as <name>.<ItemType> or GUID); hygge writes only below Files/ or Tables/",
        )
    item = parts[0]
    if not (_GUID.match(item) or "." in item):
        raise _bad(raw, f"the item '{item}' must be a GUID or <name>.<ItemType> (e.g. Sales.Lakehouse)")


def adls_url(account: str, container: str, path: str, *, emulator: bool = False) -> str:
    """The location text of an `adls` store (az:// for an emulator, whose account has no host)."""
    if emulator:
        return f"az://{container}/{path}".rstrip("/")
    return f"abfss://{container}@{account}.dfs.core.windows.net/{path}".rstrip("/")


def onelake_url(workspace: str, item: str, path: str) -> str:
    """The location text of a `onelake` store."""
    return f"https://{ONELAKE_DFS}/{workspace}/{item}/{path.strip('/')}"


def is_guid(text: str) -> bool:
    return bool(_GUID.match(text))


def _bad(raw: str, hint: str) -> ConfigError:
    return ConfigError(f"malformed location '{raw}'", hint=hint, field="path")
