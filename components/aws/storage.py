"""Where results and models live: an S3 bucket for results, EFS for models.

Results: private (public access blocked, bucket-owner-enforced ownership, TLS-only policy),
encrypted, and expired after `aws.jobs.resultsExpiryDays` so they never pile up unseen. Models:
an encrypted EFS file system, reachable by NFS only from inside the VPC, with an access point
that pins the POSIX owner and root folder the model sync Job and the WebUIs share.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.aws.network import Network
from components.aws.raw import AwsResource
from components.aws.tags import tags_for
from components.config import AwsJobsConfig

# Bucket layout (functions/submit/sdfleet_submit/layout.py): results, job records, uploads.
RESULTS_PREFIX = "results/"
JOBS_PREFIX = "jobs/"
UPLOADS_PREFIX = "uploads/"
# An init image is used within minutes of its upload.
UPLOAD_EXPIRY_DAYS = 1
NFS_PORT = 2049
# The uid/gid the WebUI images run as (images/webui).
MODELS_UID = 1000
MODELS_ROOT = "/models"


@dataclass(frozen=True)
class ResultsBucketArgs:
    jobs: AwsJobsConfig
    labels: dict[str, str]


class ResultsBucket(pulumi.ComponentResource):
    """`sdfleet:aws:ResultsBucket`."""

    def __init__(self, name: str, args: ResultsBucketArgs,
                 opts: pulumi.ResourceOptions | None = None):
        jobs, labels = args.jobs, args.labels
        super().__init__("sdfleet:aws:ResultsBucket", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.bucket = aws.s3.Bucket(f"{name}", force_destroy=False, tags=tags_for(labels, name),
                                    opts=child)
        self.public_access_block = aws.s3.BucketPublicAccessBlock(
            f"{name}-public-access", bucket=self.bucket.id, block_public_acls=True,
            block_public_policy=True, ignore_public_acls=True, restrict_public_buckets=True,
            opts=child)
        aws.s3.BucketOwnershipControls(
            f"{name}-ownership", bucket=self.bucket.id,
            rule={"object_ownership": "BucketOwnerEnforced"}, opts=child)
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-encryption", bucket=self.bucket.id,
            rules=[{"apply_server_side_encryption_by_default": {"sse_algorithm": "aws:kms"},
                    "bucket_key_enabled": True}],
            opts=child)
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-expiry", bucket=self.bucket.id,
            rules=[{"id": "expire-results", "status": "Enabled",
                    "filter": {"prefix": RESULTS_PREFIX},
                    "expiration": {"days": jobs.results_expiry_days}},
                   # A record outlives nothing it describes.
                   {"id": "expire-job-records", "status": "Enabled",
                    "filter": {"prefix": JOBS_PREFIX},
                    "expiration": {"days": jobs.results_expiry_days}},
                   {"id": "expire-uploads", "status": "Enabled",
                    "filter": {"prefix": UPLOADS_PREFIX},
                    "expiration": {"days": UPLOAD_EXPIRY_DAYS}},
                   {"id": "abort-incomplete-uploads", "status": "Enabled", "filter": {},
                    "abort_incomplete_multipart_upload": {"days_after_initiation": 1}}],
            opts=child)
        aws.s3.BucketPolicy(
            f"{name}-tls-only", bucket=self.bucket.id,
            policy=pulumi.Output.json_dumps({"Version": "2012-10-17", "Statement": [{
                "Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*",
                "Action": "s3:*",
                "Resource": [self.bucket.arn, pulumi.Output.concat(self.bucket.arn, "/*")],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]}),
            # S3 refuses a bucket policy while the public access block is being written.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.public_access_block]))
        self.name = self.bucket.bucket
        self.arn = self.bucket.arn
        self.register_outputs({"bucket": self.name})


@dataclass(frozen=True)
class ModelStoreArgs:
    network: Network
    vpc_cidr: str
    labels: dict[str, str]


class ModelStore(pulumi.ComponentResource):
    """`sdfleet:aws:ModelStore`: EFS file system, a mount target per zone, an access point."""

    def __init__(self, name: str, args: ModelStoreArgs,
                 opts: pulumi.ResourceOptions | None = None):
        network, vpc_cidr, labels = args.network, args.vpc_cidr, args.labels
        super().__init__("sdfleet:aws:ModelStore", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.file_system = aws.efs.FileSystem(
            f"{name}", encrypted=True, performance_mode="generalPurpose",
            throughput_mode="elastic",
            lifecycle_policies=[{"transition_to_ia": "AFTER_30_DAYS"},
                                {"transition_to_primary_storage_class": "AFTER_1_ACCESS"}],
            tags=tags_for(labels, name), opts=child)
        self.security_group = AwsResource(
            f"{name}-nfs", "aws:ec2/securityGroup:SecurityGroup",
            {"vpcId": network.vpc.id, "description": "sdfleet: NFS to the model store",
             "tags": tags_for(labels, f"{name}-nfs")}, opts=child)
        aws.vpc.SecurityGroupIngressRule(
            f"{name}-nfs-from-vpc", security_group_id=self.security_group.id,
            ip_protocol="tcp", from_port=NFS_PORT, to_port=NFS_PORT, cidr_ipv4=vpc_cidr,
            description="NFS from nodes inside the VPC", tags=tags_for(labels, f"{name}-nfs"),
            opts=child)
        self.mount_targets = [
            aws.efs.MountTarget(f"{name}-{i}", file_system_id=self.file_system.id,
                                subnet_id=subnet.id, security_groups=[self.security_group.id],
                                opts=child)
            for i, subnet in enumerate(network.private_subnets)
        ]
        self.access_point = aws.efs.AccessPoint(
            f"{name}-models", file_system_id=self.file_system.id,
            posix_user={"uid": MODELS_UID, "gid": MODELS_UID},
            root_directory={"path": MODELS_ROOT, "creation_info": {
                "owner_uid": MODELS_UID, "owner_gid": MODELS_UID, "permissions": "0755"}},
            tags=tags_for(labels, f"{name}-models"), opts=child)
        # What the EFS CSI driver mounts: `<file system>::<access point>`.
        self.volume_handle = pulumi.Output.concat(self.file_system.id, "::", self.access_point.id)
        self.register_outputs({"fileSystemId": self.file_system.id})
