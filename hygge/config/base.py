"""What every config model shares: unknown keys are errors, and a validation failure carries a fix."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Invalid(ValueError):
    """A validation failure with a fix: the loader shows `hint` as the error's "Try:" part."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.hint = hint


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
