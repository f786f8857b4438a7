"""Landing-zone blocks: where a flow's store lands, as Prefect blocks.

`to_store_config()` returns the `store:` mapping a flow.yml would hold (validated by the same
`StoreConfig` models), so a flow may say `store: {block: open-mirroring-landing-zone/lake}`.
Credentials are either nested (`credential_block`, a `HyggeAzureCredentials` block, stored by
reference when it was saved first) or named (`credential`: a name under `credentials:` in hygge.yml,
or a block reference such as `hygge-azure-credentials/lake`, resolved when the store is built).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from prefect.blocks.core import Block
from pydantic import BaseModel, Field, TypeAdapter, ValidationError, model_validator

from hygge.blocks.azure import HyggeAzureCredentials
from hygge.blocks.sql import DOCS_URL, LOGO_URL
from hygge.config.models import StoreConfig

_STORE = TypeAdapter(StoreConfig)


class _Common:
    """Shared behaviour (not a Block itself, so it never becomes a block type of its own)."""

    def _place(self) -> dict[str, Any]:
        raise NotImplementedError

    def _remote(self, resolve: bool) -> dict[str, Any]:
        settings: dict[str, Any] = {}
        block = getattr(self, "credential_block", None)
        name = getattr(self, "credential", None)
        if block is not None and name:
            raise ValueError("set `credential` or `credential_block`, not both")
        if block is not None:
            settings["credential"] = block.to_credential_config()
        elif name and "/" in name:  # a block reference: hygge-azure-credentials/<name>
            if resolve:
                from hygge.blocks import resolve as resolve_block

                settings["credential"] = resolve_block(name)
        elif name:
            settings["credential"] = name  # a name under `credentials:`, checked by the project loader
        for key in ("account", "endpoint"):
            if getattr(self, key, None):
                settings[key] = getattr(self, key)
        for key in _Layout.model_fields:
            # Only a changed layout is passed on: a set layout makes full loads re-encode parquet files.
            if getattr(self, key) != type(self).model_fields[key].default:
                settings[key] = getattr(self, key)
        return settings

    def _validate_settings(self) -> None:
        config = {**self._place(), **self._remote(resolve=False)}
        if isinstance(config.get("credential"), str):
            config["credential"] = None
        try:
            _STORE.validate_python(config)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"][1:])
            raise ValueError(
                f"{where + ': ' if where else ''}{first['msg'].removeprefix('Value error, ')}"
            ) from None

    def to_store_config(self) -> dict[str, Any]:
        """The `store:` settings of a flow.yml, validated by hygge's StoreConfig models."""
        return {**self._place(), **self._remote(resolve=True)}


def _credential() -> Any:
    return Field(
        default=None,
        description="A name under `credentials:` in hygge.yml, or a block reference such as "
        "hygge-azure-credentials/lake.",
    )


def _credential_block() -> Any:
    return Field(default=None, description="Azure credentials as a nested block.")


def _account() -> Any:
    return Field(default=None, description="Storage account (ADLS Gen2, az:// locations).")


def _endpoint() -> Any:
    return Field(default=None, description="Custom blob endpoint, e.g. Azurite's.")


Compression = Literal["snappy", "zstd", "gzip", "none"]


class _Layout(BaseModel):
    """How data files are cut: the same settings (and defaults) as a flow.yml store's."""

    compression: Compression = Field(
        default="snappy", description="Parquet compression: snappy, zstd, gzip or none."
    )
    row_group_rows: int = Field(default=1_000_000, ge=1, description="Most rows per parquet row group.")
    row_group_mb: int = Field(
        default=32, ge=1, description="Most Arrow data (MB) gathered per row group; bounds memory."
    )
    file_mb: int = Field(default=256, ge=1, description="A data file ends once it reaches this size (MB).")
    file_rows: int | None = Field(default=None, ge=1, description="Optional: most rows per data file.")


class OpenMirroringLandingZone(_Common, _Layout, Block):
    """A Fabric Open Mirroring landing zone: a mirrored database's Files/LandingZone on OneLake (workspace
    and database), or any folder with the same layout (local, Azurite) given as `path`.

    Example:
        Load a stored landing zone and turn it into a flow's store settings:
        ```python
        from hygge.blocks import OpenMirroringLandingZone

        zone = OpenMirroringLandingZone.load("BLOCK_NAME")
        store = zone.to_store_config()
        ```
    """

    _block_type_name = "Open Mirroring Landing Zone"
    _block_type_slug = "open-mirroring-landing-zone"
    _logo_url = LOGO_URL
    _documentation_url = DOCS_URL
    _description = "A Fabric Open Mirroring landing zone that hygge lands tables in."

    path: str | None = Field(default=None, description="The LandingZone folder (local or an Azure URL).")
    workspace: str | None = Field(default=None, description="Fabric workspace, by name or GUID.")
    database: str | None = Field(
        default=None, description="The mirrored database: <name>.MountedRelationalDatabase or its GUID."
    )
    db_schema: str | None = Field(default=None, description="Schema: tables go to <schema>.schema/.")
    key_columns: list[str] | None = Field(
        default=None, description="Key columns; default: the flow's watermark.primary_key."
    )
    folder_deletion_wait_seconds: float = Field(
        default=120, ge=0, description="full_drop: seconds to wait after deleting a table folder."
    )
    rebuild_wait_seconds: float = Field(
        default=600, ge=0, description="full_drop: longest wait for the table to leave, then rejoin, Fabric."
    )
    confirm: float | None = Field(
        default=None, gt=0, description="Seconds to wait until Fabric applied a run's rows (empty: no wait)."
    )
    partner_name: str = Field(default="hygge", description="Partner name in _partnerEvents.json.")
    source_type: str = Field(default="SQL", description="Source type in _partnerEvents.json.")
    source_version: str | None = Field(default=None, description="Source version in _partnerEvents.json.")
    schema_change: Literal["fail", "full_drop"] = Field(
        default="fail", description="When a column's type changes or disappears: fail, or rebuild the table."
    )
    credential: str | None = _credential()
    credential_block: HyggeAzureCredentials | None = _credential_block()
    account: str | None = _account()
    endpoint: str | None = _endpoint()

    @model_validator(mode="after")
    def _valid(self) -> OpenMirroringLandingZone:
        self._validate_settings()
        return self

    def _place(self) -> dict[str, Any]:
        config: dict[str, Any] = {"type": "open_mirroring"}
        for key in ("path", "workspace", "database", "key_columns", "source_version", "confirm"):
            if getattr(self, key) is not None:
                config[key] = getattr(self, key)
        if self.db_schema:
            config["schema"] = self.db_schema
        config.update(
            folder_deletion_wait_seconds=self.folder_deletion_wait_seconds,
            rebuild_wait_seconds=self.rebuild_wait_seconds,
            partner_name=self.partner_name,
            source_type=self.source_type,
            schema_change=self.schema_change,
        )
        return config


class _FileZone(_Common):
    """Delta or parquet: a local/URL folder, an ADLS Gen2 container, or a OneLake item."""

    _format: ClassVar[str] = "delta"
    path: str | None
    container: str | None
    workspace: str | None
    item: str | None

    def _place(self) -> dict[str, Any]:
        config: dict[str, Any]
        if self.workspace or self.item:
            config = {
                "type": "onelake",
                "format": self._format,
                "workspace": self.workspace,
                "item": self.item,
            }
        elif self.container:
            config = {"type": "adls", "format": self._format, "container": self.container}
        else:
            config = {"type": self._format}
        if self.path is not None:
            config["path"] = self.path
        return config


def _path() -> Any:
    return Field(
        default=None,
        description="A local folder or an Azure URL; with container or workspace/item, the folder below them.",
    )


def _container() -> Any:
    return Field(default=None, description="ADLS Gen2 container (with account).")


def _workspace() -> Any:
    return Field(default=None, description="OneLake workspace, by name or GUID (with item).")


def _item() -> Any:
    return Field(default=None, description="OneLake item: <name>.<ItemType> (e.g. Sales.Lakehouse) or GUID.")


class DeltaLandingZone(_FileZone, _Layout, Block):
    """A landing zone of Delta tables, one per entity: a local folder, an ADLS Gen2 container or a
    OneLake item (Files/ or Tables/).

    Example:
        Load a stored landing zone and turn it into a flow's store settings:
        ```python
        from hygge.blocks import DeltaLandingZone

        zone = DeltaLandingZone.load("BLOCK_NAME")
        store = zone.to_store_config()
        ```
    """

    _block_type_name = "Delta Landing Zone"
    _block_type_slug = "delta-landing-zone"
    _logo_url = LOGO_URL
    _documentation_url = DOCS_URL
    _description = "A folder of Delta tables (local, ADLS Gen2 or OneLake) that hygge lands tables in."
    _format: ClassVar[str] = "delta"

    path: str | None = _path()
    account: str | None = _account()
    container: str | None = _container()
    workspace: str | None = _workspace()
    item: str | None = _item()
    credential: str | None = _credential()
    credential_block: HyggeAzureCredentials | None = _credential_block()
    endpoint: str | None = _endpoint()

    @model_validator(mode="after")
    def _valid(self) -> DeltaLandingZone:
        self._validate_settings()
        return self


class ParquetLandingZone(_FileZone, _Layout, Block):
    """A landing zone of parquet files, a folder per entity: a local folder, an ADLS Gen2 container or a
    OneLake item (Files/).

    Example:
        Load a stored landing zone and turn it into a flow's store settings:
        ```python
        from hygge.blocks import ParquetLandingZone

        zone = ParquetLandingZone.load("BLOCK_NAME")
        store = zone.to_store_config()
        ```
    """

    _block_type_name = "Parquet Landing Zone"
    _block_type_slug = "parquet-landing-zone"
    _logo_url = LOGO_URL
    _documentation_url = DOCS_URL
    _description = "A folder of parquet files (local, ADLS Gen2 or OneLake) that hygge lands tables in."
    _format: ClassVar[str] = "parquet"

    path: str | None = _path()
    account: str | None = _account()
    container: str | None = _container()
    workspace: str | None = _workspace()
    item: str | None = _item()
    credential: str | None = _credential()
    credential_block: HyggeAzureCredentials | None = _credential_block()
    endpoint: str | None = _endpoint()

    @model_validator(mode="after")
    def _valid(self) -> ParquetLandingZone:
        self._validate_settings()
        return self
