terraform {
  required_version = ">= 1.6"

  required_providers {
    azurerm = {
      source = "hashicorp/azurerm"
      # 4.42 introduced `rbac_authorization_enabled` on azurerm_key_vault.
      version = ">= 4.42, < 5.0"
    }
  }
}

provider "azurerm" {
  subscription_id = var.subscription_id

  features {
    key_vault {
      # Never purge on destroy: purge protection is on, and the Prefect API key must survive a
      # mistaken `terraform destroy` for the soft-delete retention period.
      purge_soft_delete_on_destroy = false
    }
  }
}
