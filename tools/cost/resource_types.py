"""Which resource types cost money: priced, no charge of their own, or billed only by use.
Anything else is reported, so a new billable resource is never silently free."""

from __future__ import annotations

import re

from .sheet import Plan, Sheet, read

PRICED = {
    "gcp:container/cluster:Cluster", "gcp:container/nodePool:NodePool",
    "gcp:filestore/instance:Instance", "gcp:redis/instance:Instance",
    "gcp:compute/routerNat:RouterNat", "gcp:compute/globalForwardingRule:GlobalForwardingRule",
    "gcp:compute/forwardingRule:ForwardingRule", "gcp:cloudfunctionsv2/function:Function",
    "gcp:vpcaccess/connector:Connector", "gcp:cloudscheduler/job:Job",
    "aws:eks/cluster:Cluster", "aws:eks/nodeGroup:NodeGroup", "aws:ec2/natGateway:NatGateway",
    "aws:ec2/eip:Eip", "aws:efs/fileSystem:FileSystem", "aws:kms/key:Key",
    "aws:lambda/function:Function", "aws:apigateway/usagePlan:UsagePlan", "aws:sqs/queue:Queue",
    "aws:ec2/vpcEndpoint:VpcEndpoint", "aws:secretsmanager/secret:Secret",
}

# No charge of their own: configuration, identity, networking glue, and what runs on nodes that
# are priced already (every Kubernetes object except the few that make cloud resources, below).
NO_CHARGE_PREFIXES = ("sdfleet:", "pulumi:", "random:", "kubernetes:", "command:", "tls:")
NO_CHARGE = {
    # GCP
    "gcp:projects/service:Service", "gcp:projects/iAMMember:IAMMember",
    "gcp:serviceaccount/account:Account", "gcp:serviceaccount/iAMMember:IAMMember",
    "gcp:compute/network:Network", "gcp:compute/subnetwork:Subnetwork",
    "gcp:compute/firewall:Firewall", "gcp:compute/router:Router",
    "gcp:servicenetworking/connection:Connection",
    "gcp:cloudrunv2/serviceIamMember:ServiceIamMember",
    "gcp:cloudfunctionsv2/functionIamMember:FunctionIamMember",
    "gcp:artifactregistry/repositoryIamMember:RepositoryIamMember",
    "gcp:bigquery/datasetIamMember:DatasetIamMember",
    "gcp:secretmanager/secretIamMember:SecretIamMember",
    "gcp:storage/bucketIAMMember:BucketIAMMember",
    "gcp:iap/webBackendServiceIamMember:WebBackendServiceIamMember",
    "gcp:iap/brand:Brand", "gcp:iap/client:Client",
    # The load balancer's parts other than its forwarding rules carry no charge of their own
    # (cloud.google.com/vpc/network-pricing: rules and data processed are what is billed).
    "gcp:compute/backendService:BackendService", "gcp:compute/uRLMap:URLMap",
    "gcp:compute/targetHttpsProxy:TargetHttpsProxy", "gcp:compute/targetHttpProxy:TargetHttpProxy",
    "gcp:compute/managedSslCertificate:ManagedSslCertificate",
    "gcp:compute/globalNetworkEndpointGroup:GlobalNetworkEndpointGroup",
    "gcp:compute/healthCheck:HealthCheck", "gcp:compute/securityPolicy:SecurityPolicy",
    "gcp:compute/networkEndpointGroup:NetworkEndpointGroup", "gcp:compute/networkEndpoint:NetworkEndpoint",
    "gcp:compute/sslPolicy:SslPolicy", "gcp:compute/sslCertificate:SslCertificate",
    "gcp:iap/settings:Settings", "gcp:monitoring/notificationChannel:NotificationChannel",
    # A global address in use by a forwarding rule is not billed (prices.yaml staticIp);
    # internal ranges (private services access) never are.
    "gcp:compute/globalAddress:GlobalAddress", "gcp:compute/address:Address",
    # AWS
    "aws:iam/role:Role", "aws:iam/rolePolicy:RolePolicy",
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment", "aws:iam/policy:Policy",
    "aws:iam/openIdConnectProvider:OpenIdConnectProvider",
    "aws:ec2/vpc:Vpc", "aws:ec2/subnet:Subnet", "aws:ec2/internetGateway:InternetGateway",
    "aws:ec2/route:Route", "aws:ec2/routeTable:RouteTable",
    "aws:ec2/routeTableAssociation:RouteTableAssociation", "aws:ec2/securityGroup:SecurityGroup",
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
    "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule",
    "aws:eks/accessEntry:AccessEntry", "aws:eks/addon:Addon",
    "aws:eks/podIdentityAssociation:PodIdentityAssociation",
    "aws:efs/accessPoint:AccessPoint", "aws:efs/mountTarget:MountTarget",
    "aws:kms/alias:Alias", "aws:lambda/permission:Permission",
    "aws:sqs/queuePolicy:QueuePolicy", "aws:sqs/redriveAllowPolicy:RedriveAllowPolicy",
    "aws:sqs/redrivePolicy:RedrivePolicy", "aws:sns/topicSubscription:TopicSubscription",
    "aws:apigateway/apiKey:ApiKey", "aws:apigateway/deployment:Deployment",
    "aws:apigateway/integration:Integration", "aws:apigateway/method:Method",
    "aws:apigateway/resource:Resource", "aws:apigateway/restApi:RestApi",
    "aws:apigateway/stage:Stage", "aws:apigateway/usagePlanKey:UsagePlanKey",
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration",
    "aws:s3/bucketOwnershipControls:BucketOwnershipControls", "aws:s3/bucketPolicy:BucketPolicy",
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
    "aws:cloudwatch/eventTarget:EventTarget", "aws:ec2/launchTemplate:LaunchTemplate",
    "aws:ecr/lifecyclePolicy:LifecyclePolicy", "aws:ecr/repositoryPolicy:RepositoryPolicy",
    "aws:apigateway/methodSettings:MethodSettings", "aws:apigateway/account:Account",
    "aws:secretsmanager/secretVersion:SecretVersion",
    # Rules matching AWS service events are free (aws.amazon.com/eventbridge/pricing).
    "aws:cloudwatch/eventRule:EventRule",
}
# Billed only by use (storage held, requests made, builds run): listed, not estimated.
USAGE_BILLED = {
    "aws:cloudwatch/metricAlarm:MetricAlarm": "CloudWatch: per alarm metric beyond the free 10",
    "aws:cloudwatch/dashboard:Dashboard": "CloudWatch: per dashboard beyond the free 3",
    "gcp:logging/metric:Metric": "Cloud Monitoring: log-based metric samples beyond the free allotment",
    "gcp:monitoring/alertPolicy:AlertPolicy": "Cloud Monitoring: alert conditions and the time series they read",
    "gcp:monitoring/dashboard:Dashboard": "Cloud Monitoring: dashboards are free; their queries read billed metrics",
    "gcp:storage/bucket:Bucket": "Cloud Storage: per GB stored and per operation",
    "gcp:storage/bucketObject:BucketObject": "Cloud Storage: per GB stored and per operation",
    "gcp:artifactregistry/repository:Repository": "Artifact Registry: per GB of images over 0.5 GB",
    "gcp:cloudbuild/trigger:Trigger": "Cloud Build: per build-minute, when images are built",
    "gcp:secretmanager/secret:Secret": "Secret Manager: per active version and per access",
    # A row per ended session: kilobytes a day for a team (the first 10 GB a month are free).
    "gcp:bigquery/dataset:Dataset": "BigQuery: per GB stored and streamed in, per TB queried",
    "gcp:bigquery/table:Table": "BigQuery: per GB stored and streamed in, per TB queried",
    "gcp:secretmanager/secretVersion:SecretVersion": "Secret Manager: per active version and per access",
    "aws:s3/bucket:Bucket": "S3: per GB stored and per request",
    "aws:sns/topic:Topic": "SNS: per publish (at the API quota, under the API line)",
    "aws:cloudwatch/logGroup:LogGroup": "CloudWatch Logs: per GB ingested and stored",
    "aws:ecr/repository:Repository": "ECR: per GB of images stored",
    "aws:s3/bucketV2:BucketV2": "S3: per GB stored and per request",
    "aws:s3/bucketObjectv2:BucketObjectv2": "S3: per GB stored and per request",
    "aws:codebuild/project:Project": "CodeBuild: per build-minute, when images are built",
}
# IAM grants (members, bindings, policies) and AWS IAM objects have no charge of their own.
_IAM_GRANT = re.compile(r"iam(member|binding|policy)$", re.IGNORECASE)


def no_charge(type_: str) -> bool:
    return type_ in NO_CHARGE or type_.startswith("aws:iam/") or bool(_IAM_GRANT.search(type_))
# Kubernetes objects that make cloud resources are priced where they are read: a
# LoadBalancer Service (forwarding rules, `gcp._ingress_rules`), a claim that provisions a disk
# (`classify`).


def classify(plan: Plan, sheet: Sheet) -> None:
    """Every resource type is priced, free of its own, or billed by use; anything else is missing."""
    for type_, found in sorted(plan.by_type.items()):
        if type_ in PRICED or no_charge(type_):
            continue
        if type_ in USAGE_BILLED:
            if USAGE_BILLED[type_] not in sheet.usage_billed:
                sheet.usage_billed.append(USAGE_BILLED[type_])
        elif type_.startswith(NO_CHARGE_PREFIXES):
            if type_ == "kubernetes:core/v1:PersistentVolumeClaim":
                for r in found:  # a claim bound to a named volume (Filestore) provisions nothing
                    if not read(r.inputs, "spec", "volumeName") and read(r.inputs, "spec", "storageClassName") != "":
                        sheet.miss(f"PersistentVolumeClaim {r.name}: dynamically provisioned disk")
        else:
            sheet.miss(f"resource type {type_} ({len(found)}): not known to tools/cost (add it to resource_types.py)")
