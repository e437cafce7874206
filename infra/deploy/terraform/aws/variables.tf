variable "name" {
  description = "Name of this deployment: prefixes every resource (VPC, cluster, database)."
  type        = string
  default     = "convene"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}$", var.name))
    error_message = "name: lower-case letters, digits and hyphens, 2 to 31 characters, starting with a letter."
  }
}

variable "region" {
  description = "AWS region."
  type        = string
  default     = "eu-central-1"
}

variable "availability_zones" {
  description = "The two availability zones of the region the subnets (and the database's standby) use."
  type        = list(string)
  default     = ["eu-central-1a", "eu-central-1b"]

  validation {
    condition     = length(var.availability_zones) == 2
    error_message = "availability_zones: exactly two zones of the region."
  }
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}

variable "vpc_cidr" {
  description = "The VPC's address range; split into two public and two private subnets over two availability zones."
  type        = string
  default     = "10.40.0.0/16"
}

variable "single_nat_gateway" {
  description = "One NAT gateway for both private subnets (cheaper) instead of one per availability zone (survives a zone)."
  type        = bool
  default     = false
}

variable "kubernetes_version" {
  description = "EKS Kubernetes version."
  type        = string
  default     = "1.33"
}

variable "cluster_endpoint_public_access_cidrs" {
  description = "Who may reach the Kubernetes API from the Internet. Empty: the API is private (reach it from inside the VPC)."
  type        = list(string)
  default     = []
}

variable "cluster_log_retention_days" {
  description = "How long the EKS control plane's logs and the VPC flow logs are kept."
  type        = number
  default     = 365
}

variable "control_instance_types" {
  description = "Instance types of the control plane's node group (convene api, ingress controller, monitoring)."
  type        = list(string)
  default     = ["m6i.large"]
}

variable "control_nodes" {
  description = "Size of the control plane's node group."
  type = object({
    min     = number
    max     = number
    desired = number
  })
  default = {
    min     = 2
    max     = 6
    desired = 2
  }
}

variable "media_instance_types" {
  description = "Instance types of the media node group: one media node per instance, all its CPUs (compute optimised, high network bandwidth)."
  type        = list(string)
  default     = ["c6i.xlarge"]
}

# The media group's bounds are the plan's: `convene capacity --meetings M --participants N --resolution 720p
# --measured result.json` turns the expected peak (and a benchmark of this instance type) into a node count.
# Set max to that count plus headroom, min to the quiet hours' need (at least 2, so one node can drain).
variable "media_nodes" {
  description = "Size of the media node group (from `convene capacity`); the chart's HPA moves within it."
  type = object({
    min     = number
    max     = number
    desired = number
  })
  default = {
    min     = 2
    max     = 18
    desired = 2
  }

  validation {
    condition     = var.media_nodes.min >= 1 && var.media_nodes.min <= var.media_nodes.desired && var.media_nodes.desired <= var.media_nodes.max
    error_message = "media_nodes: need 1 <= min <= desired <= max."
  }
}

variable "media_udp_port" {
  description = "First UDP port of the media nodes (CONVENE_MEDIA_UDP_ADDR's port; the chart's media.udpPort)."
  type        = number
  default     = 10000
}

variable "media_shards" {
  description = "Media shards per node (CONVENE_MEDIA_SHARDS; the chart's media.shards): UDP ports media_udp_port to media_udp_port + shards - 1 are opened."
  type        = number
  default     = 3

  validation {
    condition     = var.media_shards >= 1 && var.media_shards <= 256
    error_message = "media_shards: 1 to 256."
  }
}

variable "media_http_port" {
  description = "TCP port of the media nodes' HTTP listener (the chart's media.httpPort): open to the cluster only."
  type        = number
  default     = 3000
}

variable "media_metrics_port" {
  description = "TCP port of the media nodes' internal listener (the chart's media.metricsPort): open to the cluster only."
  type        = number
  default     = 9090
}

variable "media_client_cidrs" {
  description = "Where participants send media from: the media UDP range is open to these."
  type        = list(string)
  default     = ["0.0.0.0/0"]
}

variable "db_instance_class" {
  description = "RDS instance class of the Postgres database."
  type        = string
  default     = "db.m7g.large"
}

variable "db_engine_version" {
  description = "Postgres major version."
  type        = string
  default     = "16"
}

variable "db_allocated_storage_gb" {
  description = "Initial storage of the database; it grows on its own up to db_max_allocated_storage_gb."
  type        = number
  default     = 50
}

variable "db_max_allocated_storage_gb" {
  description = "Most storage the database may grow to."
  type        = number
  default     = 500
}

variable "db_multi_az" {
  description = "A standby in the second availability zone that takes over on failure."
  type        = bool
  default     = true
}

variable "db_deletion_protection" {
  description = "Refuse to delete the database (turn off, apply, then destroy, to remove it on purpose)."
  type        = bool
  default     = true
}

variable "db_backup_retention_days" {
  description = "Days of automated backups (point-in-time recovery)."
  type        = number
  default     = 14
}

variable "recordings_bucket_name" {
  description = "The recordings bucket's name. Empty: <name>-recordings-<account id>."
  type        = string
  default     = ""

  # What CONVENE_RECORDINGS_URL accepts, without dots (they break TLS to the bucket's virtual host).
  validation {
    condition     = var.recordings_bucket_name == "" || can(regex("^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$", var.recordings_bucket_name))
    error_message = "recordings_bucket_name: 3 to 63 lower-case letters, digits and hyphens, starting and ending with a letter or digit."
  }
}

variable "recordings_prefix" {
  description = "The folder of the bucket Convene keeps recordings in (CONVENE_RECORDINGS_URL's path); the pods' role reaches nothing else."
  type        = string
  default     = "recordings"

  validation {
    condition     = can(regex("^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$", var.recordings_prefix))
    error_message = "recordings_prefix: one or more folder names (letters, digits, '.', '_', '-') joined by '/', no slash at either end."
  }
}

variable "recordings_noncurrent_days" {
  description = "Days a deleted (or replaced) recording file stays recoverable in the bucket before S3 removes it for good."
  type        = number
  default     = 7

  validation {
    condition     = var.recordings_noncurrent_days >= 1
    error_message = "recordings_noncurrent_days: at least 1."
  }
}

variable "kubernetes_namespace" {
  description = "The namespace the chart is installed in: its service account may assume the recordings role."
  type        = string
  default     = "convene"
}

variable "kubernetes_service_account" {
  description = "The chart's service account (serviceAccount.name; by default the release's full name: `convene` for a release named convene)."
  type        = string
  default     = "convene"
}
