output "region" {
  description = "The AWS region."
  value       = var.region
}

output "cluster_name" {
  description = "The EKS cluster: `aws eks update-kubeconfig --region <region> --name <cluster_name>`."
  value       = aws_eks_cluster.main.name
}

output "cluster_endpoint" {
  description = "The Kubernetes API's endpoint."
  value       = aws_eks_cluster.main.endpoint
}

output "cluster_security_group_id" {
  description = "The security group every node and the EKS control plane share."
  value       = aws_eks_cluster.main.vpc_config[0].cluster_security_group_id
}

output "vpc_id" {
  description = "The VPC."
  value       = aws_vpc.main.id
}

output "public_subnet_ids" {
  description = "Public subnets (media nodes, Internet-facing load balancers)."
  value       = aws_subnet.public[*].id
}

output "private_subnet_ids" {
  description = "Private subnets (control plane nodes, database)."
  value       = aws_subnet.private[*].id
}

output "media_security_group_id" {
  description = "The media nodes' security group: the UDP range open to participants."
  value       = aws_security_group.media.id
}

output "media_udp_ports" {
  description = "The UDP range open on media nodes (the chart's media.udpPort and media.shards must match it)."
  value       = "${var.media_udp_port}-${var.media_udp_port + var.media_shards - 1}"
}

output "database_endpoint" {
  description = "host:port of the Postgres database."
  value       = aws_db_instance.main.endpoint
}

output "database_name" {
  description = "The database Convene uses."
  value       = aws_db_instance.main.db_name
}

output "database_master_secret_arn" {
  description = "Secrets Manager secret holding the database user's name and password (JSON)."
  value       = aws_db_instance.main.master_user_secret[0].secret_arn
}

output "oidc_provider_arn" {
  description = "The cluster's IAM OIDC provider, for other service accounts' roles (an ingress controller's)."
  value       = aws_iam_openid_connect_provider.cluster.arn
}

output "recordings_bucket" {
  description = "The recordings bucket."
  value       = aws_s3_bucket.recordings.id
}

output "recordings_url" {
  description = "CONVENE_RECORDINGS_URL for both roles (the chart's extraEnv)."
  value       = local.recordings_url
}

output "recordings_role_arn" {
  description = "The role the chart's service account assumes: its eks.amazonaws.com/role-arn annotation (serviceAccount.annotations)."
  value       = aws_iam_role.recordings.arn
}

output "helm_values" {
  description = "Values for the Convene chart that follow from this infrastructure (with values-aws.yaml)."
  value = yamlencode({
    # Media nodes record only with a bucket. A later values file's extraEnv replaces this list: repeat these there.
    extraEnv = [
      { name = "CONVENE_RECORDINGS_URL", value = local.recordings_url },
      { name = "AWS_REGION", value = var.region },
    ]
    serviceAccount = {
      annotations = {
        "eks.amazonaws.com/role-arn" = aws_iam_role.recordings.arn
      }
    }
    media = {
      udpPort     = var.media_udp_port
      shards      = var.media_shards
      httpPort    = var.media_http_port
      metricsPort = var.media_metrics_port
      region      = var.region
      autoscaling = {
        minReplicas = var.media_nodes.min
        maxReplicas = var.media_nodes.max
      }
    }
  })
}
