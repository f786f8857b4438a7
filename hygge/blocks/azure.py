"""The Azure credential block.

Why hygge has its own block instead of reusing prefect-azure's: hygge authenticates to Azure Storage
and OneLake through obstore/object_store, deltalake and azure-identity, and supports seven ways to do
it (`AzureCredentialConfig.type`): DefaultAzureCredential, a (user-assigned) managed identity, a
service principal, the Azure CLI, a storage account key, a SAS token and a connection string.
prefect-azure's `AzureBlobStorageCredentials` carries only a connection string, an account URL
(DefaultAzureCredential) or a service principal — no account key, no SAS token, no managed-identity
client id — and `AzureContainerInstanceCredentials` is a service principal for the ACI management API,
not for storage. So `HyggeAzureCredentials` mirrors `AzureCredentialConfig` field for field (secrets as
SecretStr) and `to_credential_config()` returns it unchanged in meaning.

prefect-azure's blocks still fit where they already live: the ACI worker keeps using
`AzureContainerInstanceCredentials`, and `hygge.blocks.resolve()` also accepts an
`azure-blob-storage-credentials/<name>` reference, converting it with `from_blob_storage_credentials`
(connection string → `connection_string`, service principal → `service_principal`, account URL alone →
`default`).
"""

from __future__ import annotations

from typing import Any, Literal

from prefect.blocks.core import Block
from pydantic import Field, SecretStr, model_validator

from hygge.blocks.sql import DOCS_URL, LOGO_URL
from hygge.config.models import AzureCredentialConfig

CredentialType = Literal[
    "default", "managed_identity", "service_principal", "cli", "account_key", "sas", "connection_string"
]


class HyggeAzureCredentials(Block):
    """How hygge authenticates to Azure Storage (ADLS Gen2, Blob, Azurite) and OneLake: the default
    credential chain, a managed identity, a service principal, the Azure CLI, an account key, a SAS
    token or a connection string.

    Example:
        Load stored credentials and turn them into hygge's credential settings:
        ```python
        from hygge.blocks import HyggeAzureCredentials

        lake = HyggeAzureCredentials.load("BLOCK_NAME")
        config = lake.to_credential_config()
        ```
    """

    _block_type_name = "Hygge Azure Credentials"
    _block_type_slug = "hygge-azure-credentials"
    _logo_url = LOGO_URL
    _documentation_url = DOCS_URL
    _description = (
        "How hygge authenticates to Azure Storage and OneLake: default credential chain, managed identity, "
        "service principal, Azure CLI, account key, SAS token or connection string."
    )

    type: CredentialType = Field(
        default="default",
        description="default, managed_identity, service_principal, cli, account_key, sas or connection_string.",
    )
    client_id: str | None = Field(
        default=None, description="Client id of a user-assigned identity, or the app of a service principal."
    )
    tenant_id: str | None = Field(default=None, description="Tenant of the service principal.")
    client_secret: SecretStr | None = Field(
        default=None, description="Secret of the service principal (kept secret)."
    )
    account_key: SecretStr | None = Field(default=None, description="Storage account key (kept secret).")
    sas_token: SecretStr | None = Field(default=None, description="Shared access signature (kept secret).")
    connection_string: SecretStr | None = Field(
        default=None, description="Storage connection string (kept secret)."
    )

    @model_validator(mode="after")
    def _complete(self) -> HyggeAzureCredentials:
        self.to_credential_config()  # the same rule as hygge.yml: each type names what it needs
        return self

    def to_credential_config(self) -> AzureCredentialConfig:
        """hygge's settings for these credentials (secrets stay SecretStr)."""
        return AzureCredentialConfig(
            type=self.type,
            client_id=self.client_id,
            tenant_id=self.tenant_id,
            client_secret=self.client_secret,
            account_key=self.account_key,
            sas_token=self.sas_token,
            connection_string=self.connection_string,
        )


def from_blob_storage_credentials(block: Any) -> AzureCredentialConfig:
    """prefect-azure's `AzureBlobStorageCredentials` as hygge's credential settings."""
    if block.connection_string is not None:
        return AzureCredentialConfig(type="connection_string", connection_string=block.connection_string)
    if block.client_secret is not None:
        return AzureCredentialConfig(
            type="service_principal",
            tenant_id=block.tenant_id,
            client_id=block.client_id,
            client_secret=block.client_secret,
        )
    return AzureCredentialConfig(type="default")
