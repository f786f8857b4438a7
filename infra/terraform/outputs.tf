output "resource_group_name" {
  description = "Resource group the ACI worker creates flow-run container groups in (job variable `resource_group_name`)."
  value       = azurerm_resource_group.hygge.name
}

output "subscription_id" {
  description = "Subscription ID (job variable `subscription_id`)."
  value       = var.subscription_id
}

output "identity_id" {
  description = "Resource ID of the user-assigned managed identity (job variable `identities`, and `image_registry.identity`)."
  value       = azurerm_user_assigned_identity.aci.id
}

output "identity_client_id" {
  description = "Client ID of the managed identity: set as AZURE_CLIENT_ID in the containers so DefaultAzureCredential picks it."
  value       = azurerm_user_assigned_identity.aci.client_id
}

output "identity_principal_id" {
  description = "Object (principal) ID of the managed identity, for granting it further roles (e.g. a Fabric workspace)."
  value       = azurerm_user_assigned_identity.aci.principal_id
}

output "registry_login_server" {
  description = "Login server of the container registry (job variable `image_registry.registry_url`; image prefix)."
  value       = azurerm_container_registry.hygge.login_server
}

output "registry_name" {
  description = "Registry name, for `az acr build -r`."
  value       = azurerm_container_registry.hygge.name
}

output "image" {
  description = "Full image reference (job variable `image`)."
  value       = "${azurerm_container_registry.hygge.login_server}/hygge:${var.image_tag}"
}

output "key_vault_name" {
  description = "Key Vault holding the Prefect API key."
  value       = azurerm_key_vault.hygge.name
}

output "prefect_api_key_secret_id" {
  description = "Versionless ID of the Prefect API key secret (`az keyvault secret show --id ...`)."
  value       = azurerm_key_vault_secret.prefect_api_key.versionless_id
}

output "aci_job_variables" {
  description = "Job variables for the ACI work pool / prefect.yaml, keyed as in infra/aci-job-template.json."
  value = {
    image               = "${azurerm_container_registry.hygge.login_server}/hygge:${var.image_tag}"
    resource_group_name = azurerm_resource_group.hygge.name
    subscription_id     = var.subscription_id
    identities          = [azurerm_user_assigned_identity.aci.id]
    image_registry = {
      registry_url = azurerm_container_registry.hygge.login_server
      identity     = azurerm_user_assigned_identity.aci.id
    }
    env = {
      HYGGE_PROJECT   = "/app"
      AZURE_CLIENT_ID = azurerm_user_assigned_identity.aci.client_id
    }
  }
}
