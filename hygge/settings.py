"""Process-wide settings from the environment (`HYGGE_` prefix), e.g. for containers and CI."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HYGGE_", extra="ignore")

    project: str = "."
    task_retries: int = 2
    task_retry_delay_seconds: float = 10.0
    task_retry_jitter: float = 0.5
    upload_part_mb: int = 8
    upload_concurrency: int = 4
    # Entity leases (hygge.lease): lifetime without renewal, and how long a second run waits.
    lease_seconds: float = 120.0
    lease_wait_seconds: float = 300.0


def settings() -> Settings:
    return Settings()
