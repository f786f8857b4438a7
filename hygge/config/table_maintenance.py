"""The opt-in `maintenance:` setting of a Delta store: compaction (and vacuum) after every N-th run."""

from __future__ import annotations

from pydantic import Field, model_validator

from hygge.config.base import Invalid, Strict


class MaintenanceSettings(Strict):
    """Run `hygge maintain` for an entity once its table has `every` commits since its last
    compaction, right after a successful run of it (holding its lease, as the command does)."""

    every: int = Field(default=10, ge=1, description="commits to the table between maintenances")
    compact: bool = Field(default=True, description="compact small files towards `file_mb`")
    vacuum_hours: int | None = Field(
        default=None, ge=0, description="also vacuum files removed more than this many hours ago"
    )


class DeltaMaintenance(Strict):
    """The `maintenance:` field of the stores that can hold Delta tables."""

    maintenance: MaintenanceSettings | None = Field(
        default=None, description="opt-in compaction/vacuum after runs (Delta tables only)"
    )

    @model_validator(mode="after")
    def _delta_only(self) -> DeltaMaintenance:
        if self.maintenance is not None and getattr(self, "format", "delta") != "delta":
            raise Invalid(
                "`maintenance:` compacts and vacuums Delta tables; this store writes parquet files",
                hint="remove `maintenance:` from this store, or set `format: delta`",
            )
        return self
