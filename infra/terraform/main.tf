data "azurerm_client_config" "current" {}

locals {
  name = "${var.name_prefix}-${var.environment}"
  # Registry and Key Vault names are global and allow no dashes (registry) / at most 24 characters.
  compact_name = "${var.name_prefix}${var.environment}"
  tags = merge(
    {
      application = "hygge"
      environment = var.environment
      managed_by  = "terraform"
    },
    var.tags,
  )
}

resource "azurerm_resource_group" "hygge" {
  name     = "rg-${local.name}"
  location = var.location
  tags     = local.tags
}

# ---------------------------------------------------------------------------------------------
# Identity the flow-run containers run as: pulls the image and writes to the landing zone.
# ---------------------------------------------------------------------------------------------
resource "azurerm_user_assigned_identity" "aci" {
  name                = "id-${local.name}-aci"
  location            = azurerm_resource_group.hygge.location
  resource_group_name = azurerm_resource_group.hygge.name
  tags                = local.tags
}

# ---------------------------------------------------------------------------------------------
# Container registry for the hygge image. Admin user off: pulls use the managed identity.
# ---------------------------------------------------------------------------------------------
resource "azurerm_container_registry" "hygge" {
  #checkov:skip=CKV_AZURE_139:ACI container groups outside a VNet pull over the public endpoint; private endpoints need Premium and a VNet-injected ACI. Anonymous pull and the admin user stay off, so every pull is authenticated with Entra ID.
  #checkov:skip=CKV_AZURE_163:Image vulnerability scanning is Microsoft Defender for Containers, a subscription-level plan enabled outside this module.
  #checkov:skip=CKV_AZURE_164:Content trust (signed images) is Premium-only and needs a signing workflow in the build pipeline; not part of this baseline.
  #checkov:skip=CKV_AZURE_165:Geo-replication is Premium-only; a single-region batch workload does not need it (set registry_sku = "Premium" to add it).
  #checkov:skip=CKV_AZURE_166:Quarantine policy is Premium-only and needs an image-scanning pipeline to release images.
  #checkov:skip=CKV_AZURE_167:The untagged-manifest retention policy is Premium-only; CI pushes immutable version tags instead.
  #checkov:skip=CKV_AZURE_233:Zone redundancy is Premium-only; a failed pull only delays a scheduled batch run, which Prefect retries.
  #checkov:skip=CKV_AZURE_237:Dedicated data endpoints are Premium-only and matter only with a registry firewall, which this baseline does not use (see CKV_AZURE_139).
  name                          = "acr${local.compact_name}"
  resource_group_name           = azurerm_resource_group.hygge.name
  location                      = azurerm_resource_group.hygge.location
  sku                           = var.registry_sku
  admin_enabled                 = false
  anonymous_pull_enabled        = false
  public_network_access_enabled = true
  tags                          = local.tags
}

resource "azurerm_role_assignment" "acr_pull" {
  scope                = azurerm_container_registry.hygge.id
  role_definition_name = "AcrPull"
  principal_id         = azurerm_user_assigned_identity.aci.principal_id
  principal_type       = "ServicePrincipal"
}

resource "azurerm_role_assignment" "landing_zone" {
  scope                = var.storage_account_id
  role_definition_name = "Storage Blob Data Contributor"
  principal_id         = azurerm_user_assigned_identity.aci.principal_id
  principal_type       = "ServicePrincipal"
}

# ---------------------------------------------------------------------------------------------
# Key Vault holding the Prefect API key for the worker. RBAC authorization, purge protection,
# firewall denying everything but the listed addresses.
# ---------------------------------------------------------------------------------------------
resource "azurerm_key_vault" "hygge" {
  #checkov:skip=CKV_AZURE_189:Public network access stays on so the worker and terraform can reach the vault through its firewall (default Deny, key_vault_allowed_ip_ranges only); a private endpoint needs a VNet this module does not own.
  #checkov:skip=CKV2_AZURE_32:Private endpoint not used for the same reason as CKV_AZURE_189; access is restricted by the firewall and Entra ID RBAC.
  name                          = "kv-${local.compact_name}"
  location                      = azurerm_resource_group.hygge.location
  resource_group_name           = azurerm_resource_group.hygge.name
  tenant_id                     = data.azurerm_client_config.current.tenant_id
  sku_name                      = "standard"
  rbac_authorization_enabled    = true
  purge_protection_enabled      = true
  soft_delete_retention_days    = 90
  public_network_access_enabled = true
  tags                          = local.tags

  network_acls {
    default_action = "Deny"
    bypass         = "AzureServices"
    ip_rules       = var.key_vault_allowed_ip_ranges
  }
}

# Whoever runs terraform writes the secret (RBAC mode has no access policies).
resource "azurerm_role_assignment" "deployer_secrets_officer" {
  scope                = azurerm_key_vault.hygge.id
  role_definition_name = "Key Vault Secrets Officer"
  principal_id         = data.azurerm_client_config.current.object_id
}

# The managed identity may read the key, so a worker running as it (e.g. its own container group)
# can fetch PREFECT_API_KEY at start-up.
resource "azurerm_role_assignment" "identity_secrets_user" {
  scope                = azurerm_key_vault.hygge.id
  role_definition_name = "Key Vault Secrets User"
  principal_id         = azurerm_user_assigned_identity.aci.principal_id
  principal_type       = "ServicePrincipal"
}

resource "azurerm_key_vault_secret" "prefect_api_key" {
  name            = "prefect-api-key"
  value           = var.prefect_api_key
  key_vault_id    = azurerm_key_vault.hygge.id
  content_type    = "Prefect API key"
  expiration_date = var.prefect_api_key_expiration_date
  tags            = local.tags

  # Role assignments take a moment to apply; the secret write needs the officer role.
  depends_on = [azurerm_role_assignment.deployer_secrets_officer]
}
