"""Prefect blocks for hygge: SQL connections, Azure credentials and landing zones.

Register them with `prefect block register -m hygge.blocks` (or let `hygge blocks apply` do it).
In hygge YAML a connection, credential or store may be a block reference, `{block: <type>/<name>}`;
`resolve("<type>/<name>")` loads it from the Prefect API and returns hygge's settings for it.
"""

from __future__ import annotations

from typing import Any

from hygge.blocks.azure import HyggeAzureCredentials, from_blob_storage_credentials
from hygge.blocks.landing import DeltaLandingZone, OpenMirroringLandingZone, ParquetLandingZone
from hygge.blocks.sql import MySqlConnection, PostgresConnection, SqliteConnection, SqlServerConnection
from hygge.errors import ConfigError

BLOCK_CLASSES: tuple[type, ...] = (
    SqlServerConnection,
    PostgresConnection,
    MySqlConnection,
    SqliteConnection,
    HyggeAzureCredentials,
    OpenMirroringLandingZone,
    DeltaLandingZone,
    ParquetLandingZone,
)
"""Every block type hygge defines, in registration order."""

BLOCK_TYPES: dict[str, type] = {cls.get_block_type_slug(): cls for cls in BLOCK_CLASSES}  # type: ignore[attr-defined]
"""Block type slug → class."""

FOREIGN_TYPES = ("azure-blob-storage-credentials",)
"""Block types of other collections that `resolve` understands (prefect-azure's)."""


def block_class(slug: str) -> type:
    """The block class of a type slug (hygge's, or a foreign type `resolve` understands)."""
    if slug in BLOCK_TYPES:
        return BLOCK_TYPES[slug]
    if slug == "azure-blob-storage-credentials":
        from prefect_azure.credentials import AzureBlobStorageCredentials

        return AzureBlobStorageCredentials
    from hygge.config.files import did_you_mean as _did_you_mean

    raise ConfigError(
        f"unknown block type '{slug}'",
        hint=_did_you_mean(slug, [*BLOCK_TYPES, *FOREIGN_TYPES])
        or f"one of: {', '.join([*BLOCK_TYPES, *FOREIGN_TYPES])}",
    )


def api_url() -> str:
    """The configured Prefect API URL; a ConfigError when there is none."""
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    if not url:
        raise ConfigError(
            "a block reference needs a Prefect API, and none is configured",
            hint="set PREFECT_API_URL (and PREFECT_API_KEY for Prefect Cloud), e.g. "
            "`prefect config set PREFECT_API_URL=http://127.0.0.1:4200/api`, or write the settings "
            "in the YAML (with ${VAR} for secrets) instead of `block:`",
        )
    return str(url)


def load_block(reference: str) -> Any:
    """Load `<type>/<name>` from the Prefect API as a block instance (secrets included, client-side)."""
    slug, sep, name = reference.strip().partition("/")
    if not sep or not slug or not name:
        raise ConfigError(
            f"block reference '{reference}' must look like <type>/<name>",
            hint="e.g. `block: sql-server-connection/erp`",
        )
    cls = block_class(slug)
    url = api_url()
    try:
        return cls.load(name)  # type: ignore[attr-defined]
    except ValueError as exc:
        if "Unable to find block document" in str(exc) or "not found" in str(exc).lower():
            raise ConfigError(
                f"no block '{reference}' in the Prefect API at {url}",
                hint="create it with `hygge blocks apply blocks/<env>.yml` (or in the Prefect UI)",
            ) from None
        raise ConfigError(f"block '{reference}' could not be loaded: {_first_line(exc)}") from None
    except Exception as exc:  # httpx errors: the API did not answer
        raise ConfigError(
            f"cannot load block '{reference}' from the Prefect API at {url}: {_first_line(exc)}",
            hint="check that the Prefect server is running and PREFECT_API_URL is right",
            transient=True,
        ) from None


def to_config(block: Any) -> Any:
    """hygge's settings for a block: ConnectionConfig, AzureCredentialConfig or a store mapping."""
    for method in ("to_connection_config", "to_credential_config", "to_store_config"):
        if hasattr(block, method):
            return getattr(block, method)()
    if type(block).__name__ == "AzureBlobStorageCredentials":
        return from_blob_storage_credentials(block)
    raise ConfigError(f"a {type(block).__name__} block cannot be used in hygge's configuration")


def resolve(reference: str) -> Any:
    """`<type>/<name>` → hygge's settings from that block: a `ConnectionConfig` for a connection block,
    an `AzureCredentialConfig` for credentials, the `store:` mapping for a landing zone.

    Needs a Prefect API (PREFECT_API_URL); without one it raises a ConfigError saying so."""
    return to_config(load_block(reference))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


__all__ = [
    "BLOCK_CLASSES",
    "BLOCK_TYPES",
    "DeltaLandingZone",
    "HyggeAzureCredentials",
    "MySqlConnection",
    "OpenMirroringLandingZone",
    "ParquetLandingZone",
    "PostgresConnection",
    "SqlServerConnection",
    "SqliteConnection",
    "api_url",
    "block_class",
    "load_block",
    "resolve",
    "to_config",
]
