"""Pydantic models of a hygge project: hygge.yml, flows/<flow>/flow.yml and entities/*.yml.

Every model forbids unknown keys, so a typo is an error rather than a silently ignored setting.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from hygge.config.base import Invalid, Strict
from hygge.config.connections import AzureCredentialConfig, ConnectionConfig
from hygge.config.table_maintenance import DeltaMaintenance

RunType = Literal["full_drop", "incremental"]


class Options(Strict):
    concurrency: int = Field(default=4, ge=1, le=256)
    continue_on_error: bool = True


class RemoteSettings(Strict):
    """What a remote location needs besides its URL (all optional for local folders)."""

    credential: str | AzureCredentialConfig | None = Field(
        default=None, description="a name under `credentials:` in hygge.yml, or the settings inline"
    )
    account: str | None = Field(default=None, description="storage account, for az:// locations")
    endpoint: str | None = Field(default=None, description="custom blob endpoint, e.g. Azurite's")


class JournalConfig(RemoteSettings):
    path: str | None = Field(
        default=None, description="Folder of the journal; default <store root>/.hygge_journal"
    )
    mirror: bool = Field(
        default=False,
        description="publish the journal to Fabric as __hygge.journal (flows with an open_mirroring store)",
    )


class ProjectConfig(Strict):
    """hygge.yml"""

    name: str
    flows_dir: str = "flows"
    options: Options = Field(default_factory=Options)
    connections: dict[str, ConnectionConfig] = Field(default_factory=dict)
    credentials: dict[str, AzureCredentialConfig] = Field(default_factory=dict)
    journal: JournalConfig = Field(default_factory=JournalConfig)


class SqlHomeConfig(Strict):
    type: Literal["sql"]
    connection: str
    db_schema: str | None = Field(default=None, alias="schema")
    batch_size: int = Field(default=50_000, ge=1)
    partition_on: str | None = None
    partition_num: int | None = Field(default=None, ge=2)


class ParquetHomeConfig(RemoteSettings):
    type: Literal["parquet"]
    path: str = Field(description="Folder holding one sub-folder or file per entity")
    batch_size: int = Field(default=50_000, ge=1)


class DeltaHomeConfig(RemoteSettings):
    type: Literal["delta"]
    path: str = Field(description="Folder holding one Delta table per entity (local or an Azure URL)")
    batch_size: int = Field(default=50_000, ge=1)


HomeConfig = Annotated[SqlHomeConfig | ParquetHomeConfig | DeltaHomeConfig, Field(discriminator="type")]


class FileLayoutSettings(RemoteSettings):
    """How data files are cut: large row groups and files for readers, bounded memory for hygge.

    A row group ends at `row_group_rows` or when the gathered Arrow data reaches `row_group_mb`,
    whichever comes first (the cap keeps memory flat for wide rows); a file ends once it reaches
    `file_mb` on disk, or `file_rows` if that is set.
    """

    compression: Literal["snappy", "zstd", "gzip", "none"] = "snappy"
    row_group_rows: int = Field(default=1_000_000, ge=1)
    row_group_mb: int = Field(default=32, ge=1)
    file_mb: int = Field(default=256, ge=1)
    file_rows: int | None = Field(default=None, ge=1)


class ParquetStoreConfig(FileLayoutSettings):
    type: Literal["parquet"]
    path: str


class DeltaStoreConfig(FileLayoutSettings, DeltaMaintenance):
    type: Literal["delta"]
    path: str


class AdlsStoreConfig(FileLayoutSettings, DeltaMaintenance):
    """ADLS Gen2: account, container and a folder; `format` picks Delta or parquet files."""

    type: Literal["adls"]
    format: Literal["delta", "parquet"] = "delta"
    account: str  # type: ignore[assignment]
    container: str
    path: str = ""

    @property
    def location(self) -> str:
        from hygge.storage.location import adls_url

        return adls_url(self.account, self.container, self.path, emulator=bool(self.endpoint))


class OneLakeStoreConfig(FileLayoutSettings, DeltaMaintenance):
    """OneLake: workspace and item (names or GUIDs) and a folder under the item's Files/ or Tables/."""

    type: Literal["onelake"]
    format: Literal["delta", "parquet"] = "delta"
    workspace: str
    item: str = Field(description="<name>.<ItemType> (e.g. Sales.Lakehouse) or the item's GUID")
    path: str = Field(default="Files/hygge", description="below the item: Files/<folder> or Tables/<folder>")

    @field_validator("item")
    @classmethod
    def _item_is_named_or_guid(cls, value: str) -> str:
        from hygge.storage.location import is_guid

        if not (is_guid(value) or ("." in value.strip(".") and "/" not in value)):
            raise Invalid(
                f"the OneLake item '{value}' is neither a GUID nor <name>.<ItemType>",
                hint="write the item as <name>.<ItemType> (e.g. Sales.Lakehouse) or as the item's GUID",
            )
        return value

    @field_validator("path")
    @classmethod
    def _path_is_below_files_or_tables(cls, value: str) -> str:
        from hygge.storage.location import ONELAKE_FOLDERS

        parts = [p for p in value.split("/") if p]
        if len(parts) < 2 or parts[0] not in ONELAKE_FOLDERS:
            raise Invalid(
                f"'{value}' is not below the item's Files/ or Tables/ folder",
                hint="write `path:` as Files/<folder> or Tables/<folder>: hygge writes only below Files/ "
                "or Tables/ (those levels themselves cannot be written)",
            )
        return value

    @property
    def location(self) -> str:
        from hygge.storage.location import onelake_url

        return onelake_url(self.workspace, self.item, self.path)


class OpenMirroringStoreConfig(FileLayoutSettings):
    """A Fabric Open Mirroring landing zone: a mirrored database's Files/LandingZone on OneLake, or any
    folder with the same layout (local, Azurite) for testing."""

    type: Literal["open_mirroring"]
    path: str | None = Field(default=None, description="the LandingZone folder (local or an Azure URL)")
    workspace: str | None = None
    database: str | None = Field(
        default=None, description="the mirrored database: <name>.MountedRelationalDatabase or its GUID"
    )
    db_schema: str | None = Field(default=None, alias="schema", description="tables go to <schema>.schema/")
    key_columns: list[str] | None = Field(default=None, description="default: watermark.primary_key")
    folder_deletion_wait_seconds: float = Field(
        default=120, ge=0, description="after deleting a table folder, where no mirroring status can be read"
    )
    rebuild_wait_seconds: float = Field(
        default=600,
        ge=0,
        description="longest wait for a rebuilt table to leave, then rejoin, the mirroring status",
    )
    confirm: float | None = Field(
        default=None,
        gt=0,
        description="seconds to wait after publishing until Fabric applied the run's rows (off: no wait)",
    )
    partner_name: str = "hygge"
    source_type: str = "SQL"
    source_version: str | None = None
    schema_change: Literal["fail", "full_drop"] = Field(
        default="fail",
        description="when a column's type changes or a column disappears: fail, or rebuild the table",
    )

    @model_validator(mode="after")
    def _one_place(self) -> OpenMirroringStoreConfig:
        if not self.path and not (self.workspace and self.database):
            raise Invalid(
                "an open_mirroring store needs `path` (the LandingZone folder) or `workspace` and `database`",
                hint="e.g. workspace: Sales, database: Erp.MountedRelationalDatabase",
            )
        return self

    @property
    def location(self) -> str:
        if self.path:
            return self.path
        from hygge.storage.location import onelake_url

        return onelake_url(str(self.workspace), str(self.database), "Files/LandingZone")


StoreConfig = Annotated[
    ParquetStoreConfig | DeltaStoreConfig | AdlsStoreConfig | OneLakeStoreConfig | OpenMirroringStoreConfig,
    Field(discriminator="type"),
]


class WatermarkConfig(Strict):
    primary_key: list[str] = Field(default_factory=list)
    watermark_column: str | None = None
    lookback: float | None = Field(
        default=None,
        ge=0,
        description="Re-read this much below the previous maximum (seconds for date/time columns, "
        "units for numbers) to catch rows that commit late; needs primary_key.",
    )
    dedupe_by: str | None = Field(
        default=None,
        description="a source known to repeat keys: keep, per key, the row with the largest value of this "
        "column (SQL homes; the server picks among ties). Without it, repeated keys fail the run.",
    )

    @field_validator("primary_key", mode="before")
    @classmethod
    def _listify(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @model_validator(mode="after")
    def _lookback_needs_key(self) -> WatermarkConfig:
        if self.dedupe_by and not self.primary_key:
            raise Invalid(
                "dedupe_by keeps one row per key, so it needs primary_key",
                hint="add `primary_key:` to the watermark, or remove `dedupe_by:`",
            )
        if self.lookback and not self.primary_key:
            raise Invalid(
                "lookback re-reads rows, so it needs primary_key to merge them",
                hint="add `primary_key:` to the watermark, or remove `lookback:`",
            )
        return self


DriftPolicy = Literal["fail", "full_drop"]


class DeletesConfig(Strict):
    """Rows gone from the source land as deletes: found by comparing the source's key set with the
    landed one (or delivered by a change feed). Needs `watermark.primary_key`."""

    mode: Literal["hard", "soft"] = Field(
        default="hard", description="hard: remove the row; soft: keep it and set `column`"
    )
    column: str = Field(default="hygge_deleted_at", description="soft: the UTC time the key was found gone")
    every: int = Field(
        default=1,
        ge=0,
        description="compare key sets on every N-th incremental run (1: each); 0: only `hygge go --reconcile`",
    )
    max_share: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="refuse to delete more than this share of the landed keys unless the run confirms it",
    )


class FeedConfig(Strict):
    """A change feed: every insert, update and delete since the journaled position, no key scan."""

    type: Literal["change_tracking", "postgres_logical"]
    on_expired: Literal["full_drop", "fail"] = Field(
        default="full_drop",
        description="when the journaled position is no longer available: reload in full, or fail",
    )
    slot: str | None = Field(default=None, description="postgres_logical: default hygge_<flow>_<entity>")
    publication: str | None = Field(default=None, description="postgres_logical: default the slot's name")


class EntitySettings(Strict):
    """What an entity may set; flow `defaults`, entity list items and entity files share it."""

    name: str | None = None
    table: str | None = None
    query: str | None = None
    path: str | None = None
    run_type: RunType | None = None
    watermark: WatermarkConfig | None = None
    columns: dict[str, str] = Field(
        default_factory=dict, description="Arrow type per column, e.g. decimal(38,18)"
    )
    deletes: DeletesConfig | None = None
    feed: FeedConfig | None = None
    on_drift: DriftPolicy | None = None
    home: dict[str, Any] = Field(default_factory=dict)
    store: dict[str, Any] = Field(default_factory=dict)
    enabled: bool = True


class FlowConfig(Strict):
    """flows/<flow>/flow.yml"""

    home: dict[str, Any]
    store: dict[str, Any]
    run_type: RunType = "full_drop"
    watermark: WatermarkConfig | None = None
    deletes: DeletesConfig | None = None
    feed: FeedConfig | None = None
    on_drift: DriftPolicy = "fail"
    defaults: EntitySettings = Field(default_factory=EntitySettings)
    entities: list[str | EntitySettings] = Field(default_factory=list)
    concurrency: int | None = Field(default=None, ge=1, le=256)


class ResolvedEntity(Strict):
    """One entity with every layer merged: what the runner needs and nothing else."""

    flow: str
    name: str
    home: HomeConfig
    store: StoreConfig
    run_type: RunType
    watermark: WatermarkConfig | None = None
    table: str | None = None
    query: str | None = None
    path: str | None = None
    columns: dict[str, str] = Field(default_factory=dict)
    deletes: DeletesConfig | None = None
    feed: FeedConfig | None = None
    on_drift: DriftPolicy = Field(
        default="fail",
        description="an incremental run into a store that no longer holds the journal's last commit: "
        "fail, or reload it in full",
    )
    file: str = Field(description="the file that defined this entity, for messages")

    @field_validator("name")
    @classmethod
    def _name_is_a_folder_name(cls, value: str) -> str:
        # The name becomes the entity's folder in its store: it must stay inside it and stay visible.
        if not value.strip() or any(ch in value for ch in "/\\") or value.startswith((".", "_")):
            raise Invalid(
                f"entity name '{value}' cannot name a folder in the store (no / or \\, no leading . or _)",
                hint="give the entity a plain `name:` and set `table:` to the source's name",
            )
        return value

    @field_validator("columns")
    @classmethod
    def _column_types_parse(cls, value: dict[str, str]) -> dict[str, str]:
        from hygge.typemap import parse_arrow_type

        for column, text in value.items():
            try:
                parse_arrow_type(text)
            except ValueError as exc:
                raise Invalid(
                    f"column '{column}': {exc}",
                    hint="write an Arrow type such as string, int64, timestamp or decimal(38,18)",
                ) from None
        return value

    @model_validator(mode="after")
    def _source_is_clear(self) -> ResolvedEntity:
        if self.table and self.query:
            raise Invalid("set `table` or `query`, not both", hint="remove one of them")
        if (
            self.run_type == "incremental"
            and self.feed is None
            and not (self.watermark and self.watermark.watermark_column)
        ):
            raise ValueError(
                "run_type incremental needs watermark.watermark_column (or use run_type: full_drop)"
            )
        keys = self.watermark.primary_key if self.watermark else []
        for setting in ("deletes", "feed"):
            if getattr(self, setting) is not None and not keys:
                raise Invalid(
                    f"`{setting}:` needs watermark.primary_key: deletes are applied by key",
                    hint="add `primary_key:` under `watermark:` (the source's unique key columns)",
                )
        return self

    @property
    def keys(self) -> list[str]:
        return list(self.watermark.primary_key) if self.watermark else []
