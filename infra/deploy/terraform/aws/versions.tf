terraform {
  required_version = ">= 1.5.0"

  required_providers {
    # From 5.81 the OIDC provider (eks.tf) needs no thumbprint_list.
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.81.0, < 7.0.0"
    }
  }
}

provider "aws" {
  region = var.region

  default_tags {
    tags = merge(var.tags, {
      "app.kubernetes.io/part-of" = "convene"
      "convene.dev/deployment"    = var.name
    })
  }
}
