"""Azure credentials → object_store options (shared by obstore, deltalake and polars) and, for the
azure-identity chain, a token source that refreshes before expiry.

Native object_store credentials (account key, SAS, service principal, managed identity) refresh
themselves inside each client. DefaultAzureCredential and the Azure CLI exist only in azure-identity:
obstore gets azure-identity as its credential provider, and deltalake/polars get a bearer token taken
fresh from the same credential for each operation.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from hygge.config.models import AzureCredentialConfig
from hygge.errors import ConfigError

STORAGE_SCOPE = "https://storage.azure.com/.default"
REFRESH_MARGIN_SECONDS = 300
# Azurite's documented development account; public by design, not a secret.
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


@dataclass
class TokenSource:
    """Bearer tokens for the storage audience from an azure-identity credential, renewed early."""

    credential: Any
    _token: Any = field(default=None, repr=False)  # holds the bearer token: never in a repr
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def token(self) -> str:
        with self._lock:
            if self._token is None or self._token.expires_on - time.time() < REFRESH_MARGIN_SECONDS:
                self._token = self.credential.get_token(STORAGE_SCOPE)
            return self._token.token


@dataclass(frozen=True)
class ResolvedCredential:
    """What a location's clients need: object_store options, and for token auth a TokenSource."""

    kind: str
    options: dict[str, str] = field(repr=False)  # holds secrets: never in a repr
    tokens: TokenSource | None = None
    secrets: tuple[str, ...] = field(default=(), repr=False)


def resolve(
    config: AzureCredentialConfig | None, *, account: str | None, emulator: bool
) -> ResolvedCredential:
    if config is None:
        if emulator:
            return ResolvedCredential("emulator", {"account_key": AZURITE_KEY})
        config = AzureCredentialConfig(type="default")
    kind = config.type
    if kind == "account_key":
        key = config.account_key.get_secret_value()  # type: ignore[union-attr]
        return ResolvedCredential(kind, {"account_key": key}, secrets=(key,))
    if kind == "sas":
        sas = config.sas_token.get_secret_value().lstrip("?")  # type: ignore[union-attr]
        return ResolvedCredential(kind, {"sas_key": sas}, secrets=(sas,))
    if kind == "connection_string":
        return _from_connection_string(config.connection_string.get_secret_value())  # type: ignore[union-attr]
    if kind == "service_principal":
        secret = config.client_secret.get_secret_value()  # type: ignore[union-attr]
        return ResolvedCredential(
            kind,
            {
                "client_id": config.client_id or "",
                "client_secret": secret,
                "tenant_id": config.tenant_id or "",
            },
            secrets=(secret,),
        )
    if kind == "managed_identity":
        options = {"client_id": config.client_id} if config.client_id else {}
        return ResolvedCredential(kind, options)
    if kind in ("default", "cli"):
        from azure.identity import AzureCliCredential, DefaultAzureCredential

        credential = (
            AzureCliCredential()
            if kind == "cli"
            else DefaultAzureCredential(managed_identity_client_id=config.client_id)
        )
        return ResolvedCredential(kind, {}, tokens=TokenSource(credential))
    raise ConfigError(f"unknown credential type '{kind}'", field="credential.type")


def _from_connection_string(text: str) -> ResolvedCredential:
    parts = dict(item.split("=", 1) for item in text.split(";") if "=" in item)
    options: dict[str, str] = {}
    secrets: list[str] = []
    if "AccountName" in parts:
        options["account_name"] = parts["AccountName"]
    if "AccountKey" in parts:
        options["account_key"] = parts["AccountKey"]
        secrets.append(parts["AccountKey"])
    if "SharedAccessSignature" in parts:
        options["sas_key"] = parts["SharedAccessSignature"]
        secrets.append(parts["SharedAccessSignature"])
    if "BlobEndpoint" in parts:
        options["endpoint"] = parts["BlobEndpoint"].rstrip("/")
    if not ({"account_key", "sas_key"} & options.keys()):
        raise ConfigError(
            "the connection string has neither AccountKey nor SharedAccessSignature",
            hint="copy the full connection string from the storage account's Access keys page",
            field="credential.connection_string",
        )
    return ResolvedCredential("connection_string", options, secrets=(text, *secrets))
