# Recordings: media nodes upload each recording's tracks under <prefix>/<tenant>/<recording>/tracks/, the
# control plane composes them into recording.mp4 and audio.m4a beside them, removes the tracks and hands out
# presigned GET URLs. Both roles reach the bucket through one IAM role their service account assumes (IRSA).

locals {
  # Bucket names are global: the account id makes the default unique (var.name already is within an account).
  recordings_bucket = coalesce(var.recordings_bucket_name, "${var.name}-recordings-${data.aws_caller_identity.current.account_id}")
  recordings_url    = "s3://${local.recordings_bucket}/${var.recordings_prefix}"
  oidc_issuer       = trimprefix(aws_eks_cluster.main.identity[0].oidc[0].issuer, "https://")
}

resource "aws_s3_bucket" "recordings" {
  #checkov:skip=CKV_AWS_18:server access logs need a second bucket (SSE-S3 only, with its own logging, versioning and lifecycle); CloudTrail data events are the account's choice
  #checkov:skip=CKV_AWS_144:cross-region replication needs a bucket and provider in a second region; versioning covers a wrong delete, the region's durability the rest
  #checkov:skip=CKV2_AWS_62:nothing consumes bucket events: the control plane learns of uploads from the media node, not from S3
  bucket = local.recordings_bucket
}

resource "aws_s3_bucket_public_access_block" "recordings" {
  bucket                  = aws_s3_bucket.recordings.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

# No ACLs: the bucket owns every object, whoever uploaded it.
resource "aws_s3_bucket_ownership_controls" "recordings" {
  bucket = aws_s3_bucket.recordings.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

# The deployment's key; a bucket key keeps KMS calls (and their cost) down for the many track uploads.
resource "aws_s3_bucket_server_side_encryption_configuration" "recordings" {
  bucket = aws_s3_bucket.recordings.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.main.arn
    }
    bucket_key_enabled = true
  }
}

# A deleted recording stays recoverable for recordings_noncurrent_days, then is gone.
resource "aws_s3_bucket_versioning" "recordings" {
  bucket = aws_s3_bucket.recordings.id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "recordings" {
  bucket = aws_s3_bucket.recordings.id

  rule {
    id     = "uploads-and-old-versions"
    status = "Enabled"

    filter {}

    # Parts of an upload a node never finished (it died mid-upload) are billed until aborted.
    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }

    noncurrent_version_expiration {
      noncurrent_days = var.recordings_noncurrent_days
    }

    # Delete markers left once their object's versions have expired.
    expiration {
      expired_object_delete_marker = true
    }
  }

  depends_on = [aws_s3_bucket_versioning.recordings]
}

data "aws_iam_policy_document" "recordings_bucket" {
  statement {
    sid       = "TLSOnly"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.recordings.arn, "${aws_s3_bucket.recordings.arn}/*"]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "recordings" {
  bucket = aws_s3_bucket.recordings.id
  policy = data.aws_iam_policy_document.recordings_bucket.json

  # S3 refuses a policy while the public access block is being set.
  depends_on = [aws_s3_bucket_public_access_block.recordings]
}

# The role the chart's service account assumes: its pods (convene api, convene media) get web identity tokens
# from EKS's pod identity webhook once the account carries eks.amazonaws.com/role-arn.
data "aws_iam_policy_document" "recordings_assume" {
  statement {
    actions = ["sts:AssumeRoleWithWebIdentity"]

    principals {
      type        = "Federated"
      identifiers = [aws_iam_openid_connect_provider.cluster.arn]
    }

    condition {
      test     = "StringEquals"
      variable = "${local.oidc_issuer}:sub"
      values   = ["system:serviceaccount:${var.kubernetes_namespace}:${var.kubernetes_service_account}"]
    }

    condition {
      test     = "StringEquals"
      variable = "${local.oidc_issuer}:aud"
      values   = ["sts.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "recordings" {
  name               = "${var.name}-recordings"
  assume_role_policy = data.aws_iam_policy_document.recordings_assume.json
}

# Exactly what Convene does, under the prefix only: put (in parts), get (also through presigned URLs), list a
# recording's tracks, delete.
data "aws_iam_policy_document" "recordings" {
  statement {
    sid       = "List"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.recordings.arn]

    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${var.recordings_prefix}/*"]
    }
  }

  statement {
    sid = "Objects"
    actions = [
      "s3:PutObject",
      "s3:AbortMultipartUpload",
      "s3:ListMultipartUploadParts",
      "s3:GetObject",
      "s3:DeleteObject",
    ]
    resources = ["${aws_s3_bucket.recordings.arn}/${var.recordings_prefix}/*"]
  }

  # The deployment's key encrypts more than recordings: only through S3, and only for this bucket.
  statement {
    sid       = "Key"
    actions   = ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey"]
    resources = [aws_kms_key.main.arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${var.region}.amazonaws.com"]
    }

    # The bucket's ARN with a bucket key, the object's without.
    condition {
      test     = "StringLike"
      variable = "kms:EncryptionContext:aws:s3:arn"
      values   = [aws_s3_bucket.recordings.arn, "${aws_s3_bucket.recordings.arn}/*"]
    }
  }
}

resource "aws_iam_role_policy" "recordings" {
  name   = "recordings"
  role   = aws_iam_role.recordings.id
  policy = data.aws_iam_policy_document.recordings.json
}
