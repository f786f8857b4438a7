"""One error hierarchy for hygge: every failure a user sees is a HyggeError with its context.

The context (file, flow, entity, field) and a hint are part of the message, so a single line says what
broke, where, and what to try. `transient` tells retry logic whether trying again can help.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace


@dataclass(frozen=True)
class Context:
    """Where an error happened; every part is optional."""

    file: str | None = None
    flow: str | None = None
    entity: str | None = None
    field: str | None = None

    def describe(self) -> str:
        parts = []
        if self.flow:
            parts.append(f"flow '{self.flow}'")
        if self.entity:
            parts.append(f"entity '{self.entity}'")
        if self.field:
            parts.append(f"field '{self.field}'")
        text = ", ".join(parts)
        if self.file:
            text = f"{self.file}: {text}" if text else self.file
        return text


@dataclass
class _Details:
    message: str
    hint: str | None = None
    context: Context = field(default_factory=Context)


class HyggeError(Exception):
    """Base of every error hygge raises on purpose."""

    kind = "error"
    transient = False

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        context: Context | None = None,
        transient: bool | None = None,
        **where: str | None,
    ) -> None:
        ctx = context or Context()
        if where:
            ctx = replace(ctx, **{k: v for k, v in where.items() if v is not None})
        self.details = _Details(message=message, hint=hint, context=ctx)
        if transient is not None:
            self.transient = transient
        super().__init__(self.render())

    @property
    def message(self) -> str:
        return self.details.message

    @property
    def hint(self) -> str | None:
        return self.details.hint

    @property
    def context(self) -> Context:
        return self.details.context

    def with_context(self, **where: str | None) -> HyggeError:
        """Fill in context parts that are still unknown (inner code rarely knows the flow or file)."""
        current = self.details.context
        missing = {k: v for k, v in where.items() if v is not None and getattr(current, k) is None}
        if missing:
            self.details.context = replace(current, **missing)
            self.args = (self.render(),)
        return self

    def render(self) -> str:
        where = self.details.context.describe()
        text = f"{where}: {self.details.message}" if where else self.details.message
        if self.details.hint:
            text += f" Try: {self.details.hint}"
        return text

    def __str__(self) -> str:
        return self.render()


class ConfigError(HyggeError):
    """The project, flow or entity configuration is wrong; retrying cannot help."""

    kind = "config"


class SourceError(HyggeError):
    """Reading from a home failed (missing table, unsupported type, driver or network failure)."""

    kind = "source"


class StoreError(HyggeError):
    """Writing to a store failed."""

    kind = "store"


class JournalError(HyggeError):
    """Recording or reading the journal failed."""

    kind = "journal"


class ConcurrencyError(HyggeError):
    """Another run holds the entity (or lost it to one): transient, the other run finishes or expires."""

    kind = "concurrency"
    transient = True


class PublishError(HyggeError):
    """Publishing the journal failed."""

    kind = "publish"
