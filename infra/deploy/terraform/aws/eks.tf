# The EKS cluster and its two managed node groups: `control` (private subnets: convene api, the ingress
# controller, monitoring) and `media` (public subnets with public addresses: convene media, one per instance).

data "aws_iam_policy_document" "cluster_assume" {
  statement {
    actions = ["sts:AssumeRole", "sts:TagSession"]

    principals {
      type        = "Service"
      identifiers = ["eks.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "cluster" {
  name               = "${var.name}-eks-cluster"
  assume_role_policy = data.aws_iam_policy_document.cluster_assume.json
}

resource "aws_iam_role_policy_attachment" "cluster" {
  role       = aws_iam_role.cluster.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/AmazonEKSClusterPolicy"
}

resource "aws_cloudwatch_log_group" "cluster" {
  # The name EKS writes the control plane's logs to.
  name              = "/aws/eks/${var.name}/cluster"
  retention_in_days = var.cluster_log_retention_days
  kms_key_id        = aws_kms_key.main.arn
}

resource "aws_eks_cluster" "main" {
  name     = var.name
  version  = var.kubernetes_version
  role_arn = aws_iam_role.cluster.arn

  vpc_config {
    # The control plane's network interfaces go in the private subnets.
    subnet_ids              = aws_subnet.private[*].id
    endpoint_private_access = true
    endpoint_public_access  = length(var.cluster_endpoint_public_access_cidrs) > 0
    public_access_cidrs     = length(var.cluster_endpoint_public_access_cidrs) > 0 ? var.cluster_endpoint_public_access_cidrs : null
  }

  access_config {
    authentication_mode                         = "API"
    bootstrap_cluster_creator_admin_permissions = true
  }

  encryption_config {
    resources = ["secrets"]

    provider {
      key_arn = aws_kms_key.main.arn
    }
  }

  enabled_cluster_log_types = ["api", "audit", "authenticator", "controllerManager", "scheduler"]

  depends_on = [
    aws_iam_role_policy_attachment.cluster,
    aws_cloudwatch_log_group.cluster,
  ]
}

# The cluster's service account tokens as an identity IAM trusts (IRSA): pods assume roles through it, such as
# the recordings role (recordings.tf) or an ingress controller's. No thumbprint: IAM checks EKS's issuer
# against its own trusted CAs.
resource "aws_iam_openid_connect_provider" "cluster" {
  url            = aws_eks_cluster.main.identity[0].oidc[0].issuer
  client_id_list = ["sts.amazonaws.com"]
}

# What every node's role may do: join the cluster, run the VPC CNI, pull images.
data "aws_iam_policy_document" "node_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "node" {
  name               = "${var.name}-eks-node"
  assume_role_policy = data.aws_iam_policy_document.node_assume.json
}

resource "aws_iam_role_policy_attachment" "node" {
  for_each = toset([
    "AmazonEKSWorkerNodePolicy",
    "AmazonEKS_CNI_Policy",
    "AmazonEC2ContainerRegistryReadOnly",
  ])

  role       = aws_iam_role.node.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/${each.value}"
}

# Instance metadata: IMDSv2 only; one hop, so only host-network pods (the media node's init container reading
# the public address, the CNI) reach it, not ordinary pods.
resource "aws_launch_template" "control" {
  name_prefix            = "${var.name}-control-"
  update_default_version = true

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  block_device_mappings {
    device_name = "/dev/xvda"

    ebs {
      volume_size           = 50
      volume_type           = "gp3"
      encrypted             = true
      kms_key_id            = aws_kms_key.main.arn
      delete_on_termination = true
    }
  }

  tag_specifications {
    resource_type = "instance"

    tags = {
      Name = "${var.name}-control"
    }
  }
}

resource "aws_eks_node_group" "control" {
  cluster_name    = aws_eks_cluster.main.name
  node_group_name = "control"
  node_role_arn   = aws_iam_role.node.arn
  subnet_ids      = aws_subnet.private[*].id
  instance_types  = var.control_instance_types

  launch_template {
    id      = aws_launch_template.control.id
    version = aws_launch_template.control.latest_version
  }

  scaling_config {
    min_size     = var.control_nodes.min
    max_size     = var.control_nodes.max
    desired_size = var.control_nodes.desired
  }

  update_config {
    max_unavailable = 1
  }

  labels = {
    "convene.dev/pool" = "control"
  }

  # The cluster autoscaler moves the desired size; Terraform keeps the bounds.
  lifecycle {
    ignore_changes = [scaling_config[0].desired_size]
  }

  depends_on = [aws_iam_role_policy_attachment.node]
}

# The media nodes' own rules: participants' UDP media from the Internet, the control plane's HTTP and
# Prometheus from the cluster. Everything else between nodes goes through the cluster security group.
resource "aws_security_group" "media" {
  name        = "${var.name}-media"
  description = "Convene media nodes: UDP media from participants; HTTP and metrics from the cluster"
  vpc_id      = aws_vpc.main.id

  tags = {
    Name = "${var.name}-media"
  }
}

resource "aws_vpc_security_group_ingress_rule" "media_udp" {
  for_each = toset(var.media_client_cidrs)

  security_group_id = aws_security_group.media.id
  description       = "Participants' media (DTLS/SRTP, STUN): one UDP port per shard"
  ip_protocol       = "udp"
  from_port         = var.media_udp_port
  to_port           = var.media_udp_port + var.media_shards - 1
  cidr_ipv4         = each.value
}

resource "aws_vpc_security_group_ingress_rule" "media_http" {
  security_group_id            = aws_security_group.media.id
  description                  = "The control plane: node HTTP (CONVENE_NODE_URL), proxied signalling"
  ip_protocol                  = "tcp"
  from_port                    = var.media_http_port
  to_port                      = var.media_http_port
  referenced_security_group_id = aws_eks_cluster.main.vpc_config[0].cluster_security_group_id
}

resource "aws_vpc_security_group_ingress_rule" "media_metrics" {
  security_group_id            = aws_security_group.media.id
  description                  = "Prometheus and convene drain: the internal listener"
  ip_protocol                  = "tcp"
  from_port                    = var.media_metrics_port
  to_port                      = var.media_metrics_port
  referenced_security_group_id = aws_eks_cluster.main.vpc_config[0].cluster_security_group_id
}

resource "aws_vpc_security_group_egress_rule" "media" {
  security_group_id = aws_security_group.media.id
  description       = "Media to participants anywhere; the control plane; image pulls"
  ip_protocol       = "-1"
  cidr_ipv4         = "0.0.0.0/0"
}

resource "aws_launch_template" "media" {
  name_prefix            = "${var.name}-media-"
  update_default_version = true

  # The cluster security group (node to node, control plane) and the media rules.
  vpc_security_group_ids = [
    aws_eks_cluster.main.vpc_config[0].cluster_security_group_id,
    aws_security_group.media.id,
  ]

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  block_device_mappings {
    device_name = "/dev/xvda"

    ebs {
      # The node's data dir (outbox, recordings in progress) is an emptyDir on this disk.
      volume_size           = 100
      volume_type           = "gp3"
      encrypted             = true
      kms_key_id            = aws_kms_key.main.arn
      delete_on_termination = true
    }
  }

  tag_specifications {
    resource_type = "instance"

    tags = {
      Name = "${var.name}-media"
    }
  }
}

resource "aws_eks_node_group" "media" {
  cluster_name    = aws_eks_cluster.main.name
  node_group_name = "media"
  node_role_arn   = aws_iam_role.node.arn
  # Public subnets: each instance gets a public IPv4 that participants send media to.
  subnet_ids     = aws_subnet.public[*].id
  instance_types = var.media_instance_types

  launch_template {
    id      = aws_launch_template.media.id
    version = aws_launch_template.media.latest_version
  }

  # The plan's bounds, from `convene capacity` (see variables.tf): 2 to 18 by default.
  scaling_config {
    min_size     = var.media_nodes.min
    max_size     = var.media_nodes.max
    desired_size = var.media_nodes.desired
  }

  update_config {
    max_unavailable = 1
  }

  labels = {
    "convene.dev/pool" = "media"
  }

  # Only media nodes (and daemon sets that tolerate it) run here.
  taint {
    key    = "convene.dev/pool"
    value  = "media"
    effect = "NO_SCHEDULE"
  }

  lifecycle {
    ignore_changes = [scaling_config[0].desired_size]
  }

  depends_on = [aws_iam_role_policy_attachment.node]
}
