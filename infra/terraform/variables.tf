variable "subscription_id" {
  description = "Azure subscription that holds hygge's resources (and where the ACI worker creates container groups)."
  type        = string

  validation {
    condition     = can(regex("^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$", var.subscription_id))
    error_message = "subscription_id must be a subscription GUID."
  }
}

variable "location" {
  description = "Azure region for every resource, e.g. westeurope (lower-case, no spaces; `az account list-locations -o table`)."
  type        = string
  default     = "westeurope"

  validation {
    condition     = can(regex("^[a-z][a-z0-9]+$", var.location))
    error_message = "location must be an Azure region name such as westeurope or northeurope."
  }
}

variable "name_prefix" {
  description = "Short prefix for resource names. Registry and Key Vault names are globally unique, so make it specific to your organisation."
  type        = string
  default     = "hygge"

  validation {
    condition     = can(regex("^[a-z][a-z0-9]{1,9}$", var.name_prefix))
    error_message = "name_prefix must be 2-10 lower-case letters or digits, starting with a letter (registry names allow no dashes)."
  }
}

variable "environment" {
  description = "Environment name used in resource names and tags."
  type        = string
  default     = "prod"

  validation {
    condition     = contains(["dev", "test", "prod"], var.environment)
    error_message = "environment must be one of dev, test, prod."
  }
}

variable "storage_account_id" {
  description = "Resource ID of the existing ADLS Gen2 storage account hygge lands data in; the managed identity gets Storage Blob Data Contributor on it."
  type        = string

  validation {
    condition     = can(regex("^/subscriptions/[0-9a-fA-F-]{36}/resourceGroups/[^/]+/providers/Microsoft\\.Storage/storageAccounts/[a-z0-9]{3,24}$", var.storage_account_id))
    error_message = "storage_account_id must be a storage account resource ID: /subscriptions/<guid>/resourceGroups/<rg>/providers/Microsoft.Storage/storageAccounts/<name>."
  }
}

variable "registry_sku" {
  description = "Azure Container Registry SKU. Premium adds private endpoints, geo-replication and retention policies."
  type        = string
  default     = "Standard"

  validation {
    condition     = contains(["Basic", "Standard", "Premium"], var.registry_sku)
    error_message = "registry_sku must be Basic, Standard or Premium."
  }
}

variable "prefect_api_key" {
  description = "Prefect Cloud API key (a service account's key) stored in Key Vault for the ACI worker. Pass it with TF_VAR_prefect_api_key; never commit it."
  type        = string
  sensitive   = true

  validation {
    condition     = can(regex("^pn[a-z]_[A-Za-z0-9]{20,}$", var.prefect_api_key))
    error_message = "prefect_api_key must look like a Prefect API key (pnu_... or pnb_...)."
  }
}

variable "prefect_api_key_expiration_date" {
  description = "When the Prefect API key expires (RFC 3339 UTC, e.g. 2026-12-31T00:00:00Z); set to the key's expiry in Prefect Cloud so the secret expires with it."
  type        = string

  validation {
    condition     = can(regex("^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}Z$", var.prefect_api_key_expiration_date))
    error_message = "prefect_api_key_expiration_date must be an RFC 3339 UTC timestamp such as 2026-12-31T00:00:00Z."
  }
}

variable "key_vault_allowed_ip_ranges" {
  description = "Public IPv4 addresses or CIDR ranges allowed through the Key Vault firewall: the machine running terraform and wherever the Prefect worker runs."
  type        = list(string)

  validation {
    condition     = length(var.key_vault_allowed_ip_ranges) > 0 && alltrue([for ip in var.key_vault_allowed_ip_ranges : can(cidrhost(strcontains(ip, "/") ? ip : "${ip}/32", 0))])
    error_message = "key_vault_allowed_ip_ranges must list at least one IPv4 address or CIDR range (the Key Vault firewall denies everything else)."
  }
}

variable "image_tag" {
  description = "Tag of the hygge image in the registry, used for the `image` job variable output."
  type        = string
  default     = "latest"

  validation {
    condition     = can(regex("^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$", var.image_tag))
    error_message = "image_tag must be a valid container image tag."
  }
}

variable "tags" {
  description = "Extra tags applied to every resource."
  type        = map(string)
  default     = {}
}
