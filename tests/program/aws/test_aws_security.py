"""Least privilege and private-by-default, on the registered inputs of the aws-dev stack."""

from __future__ import annotations

import json

from tests.program.aws.aws_fixtures import (  # noqa: F401
    STACK,
    as_list,
    aws_config,
    aws_config_of,
    aws_plan,
    aws_update,
    policy_documents,
)

ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
ATTACHMENT = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
BUCKET = "aws:s3/bucket:Bucket"


def _allows(doc: dict):
    for s in as_list(doc["Statement"]):
        if s.get("Effect", "Allow") == "Allow":
            yield s


def test_no_policy_allows_any_action_on_any_resource(aws_update):
    docs = list(policy_documents(aws_update))
    assert len(docs) >= 20
    for r, key, doc in docs:
        for s in _allows(doc):
            actions = as_list(s.get("Action", []))
            resources = as_list(s.get("Resource", []))
            wide = [a for a in actions if a == "*" or a.endswith(":*")]
            assert not (wide and "*" in resources), f"{r.type} {r.name}.{key}: {s}"
            # Stricter: our own permissions name every action.
            assert not [a for a in actions if "*" in a], f"{r.type} {r.name}.{key}: {actions}"


def test_any_resource_star_is_only_for_calls_without_resource_permissions(aws_update):
    """`Resource: *` only where AWS offers nothing narrower: EC2 Describe*, the Pricing API,
    ECR's GetAuthorizationToken (a registry-wide login; ECR docs "Amazon ECR actions":
    GetAuthorizationToken has no resource type) and CloudWatch's PutMetricData, which has no
    resource either and is then held to the stack's namespace by its condition key."""
    for r in aws_update.of_type(ROLE_POLICY):
        for s in _allows(json.loads(r.inputs["policy"])):
            if "*" in as_list(s["Resource"]):
                if as_list(s["Action"]) == ["cloudwatch:PutMetricData"]:
                    assert s["Condition"] == {"StringEquals": {"cloudwatch:namespace": "sdfleet/sdbatch"}}, s
                    continue
                assert all(a.startswith("ec2:Describe")
                           or a in ("pricing:GetProducts", "ecr:GetAuthorizationToken")
                           for a in as_list(s["Action"])), f"{r.name}: {s}"


def test_only_known_aws_managed_policies_are_attached(aws_update):
    allowed = {"AmazonEKSClusterPolicy", "AmazonEKSWorkerNodePolicy",
               "AmazonEC2ContainerRegistryReadOnly", "AmazonSSMManagedInstanceCore",
               "AmazonEKS_CNI_Policy", "AmazonEFSCSIDriverPolicy"}
    attached = {r.inputs["policyArn"].rsplit("/", 1)[1] for r in aws_update.of_type(ATTACHMENT)}
    assert attached == allowed


def test_workload_roles_trust_only_pod_identity_and_are_associated(aws_update):
    associations = {(a.inputs["namespace"], a.inputs["serviceAccount"])
                    for a in aws_update.of_type("aws:eks/podIdentityAssociation:PodIdentityAssociation")}
    assert associations == {("kube-system", "karpenter"), ("keda", "keda-operator"),
                            ("sdfleet-batch", "agent-sdwebui"), ("sdfleet-batch", "agent-comfyui")}
    for role in aws_update.of_type("aws:iam/role:Role"):
        (statement,) = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
        principal = statement["Principal"]["Service"]
        if "Pod Identity" in role.inputs["description"] or "(VPC CNI)" in role.inputs["description"] \
                or "(EFS CSI" in role.inputs["description"]:
            assert principal == "pods.eks.amazonaws.com"
            assert statement["Action"] == ["sts:AssumeRole", "sts:TagSession"]
    addons = {a.inputs["addonName"]: a.inputs for a in aws_update.of_type("aws:eks/addon:Addon")}
    assert addons["vpc-cni"]["podIdentityAssociations"][0]["serviceAccount"] == "aws-node"
    assert addons["aws-efs-csi-driver"]["podIdentityAssociations"][0]["serviceAccount"] == \
        "efs-csi-controller-sa"
    assert "eks-pod-identity-agent" in addons


def test_keda_may_only_read_its_queues(aws_update):
    policy = json.loads(aws_update.one(ROLE_POLICY, "sdbatch-keda-policy").inputs["policy"])
    (statement,) = policy["Statement"]
    assert statement["Action"] == ["sqs:GetQueueAttributes"]
    queues = {q.inputs["name"]: q for q in aws_update.of_type("aws:sqs/queue:Queue")}
    assert sorted(statement["Resource"]) == sorted(
        f"arn:aws:sqs:us-east-1:123456789012:{n}" for n in ("sdbatch-sdwebui", "sdbatch-comfyui"))
    assert set(queues) >= {"sdbatch-sdwebui", "sdbatch-comfyui"}


def test_agent_role_is_scoped_to_its_queue_bucket_prefix_and_topic(aws_update):
    doc = json.loads(aws_update.one(ROLE_POLICY, "sdbatch-agent-sdwebui-policy").inputs["policy"])
    grants = {a: as_list(s["Resource"]) for s in doc["Statement"] for a in as_list(s["Action"])}
    queue = "arn:aws:sqs:us-east-1:123456789012:sdbatch-sdwebui"
    assert grants["sqs:ReceiveMessage"] == [queue] and grants["sqs:DeleteMessage"] == [queue]
    assert grants["sqs:ChangeMessageVisibility"] == [queue]
    assert grants["sqs:SendMessage"] == [queue + "-dlq"]
    bucket = aws_update.one(BUCKET, "results").inputs["tags"]["Name"]
    assert [r.endswith("/results/*") for r in grants["s3:PutObject"]] == [True]
    assert grants["sns:Publish"] == ["arn:aws:sns:us-east-1:123456789012:sdbatch-completions"]
    assert grants["s3:ListBucket"] == [f"arn:aws:s3:::{aws_update.outputs['resultsBucket']}"]
    # its own results, and init images only from clients' uploads (never jobs/ records)
    assert sorted(r.rsplit("/", 2)[-2] for r in grants["s3:GetObject"]) == ["results", "uploads"]
    assert "s3:DeleteObject" not in grants and bucket


def test_submit_lambda_may_publish_jobs_record_and_read_them_and_log_only(aws_update):
    doc = json.loads(aws_update.one(ROLE_POLICY, "sdbatch-submit").inputs["policy"])
    grants = {a: as_list(s["Resource"]) for s in doc["Statement"] for a in as_list(s["Action"])}
    assert sorted(grants) == ["logs:CreateLogStream", "logs:PutLogEvents", "s3:DeleteObject",
                              "s3:GetObject", "s3:ListBucket", "s3:PutObject", "sns:Publish"]
    assert grants["sns:Publish"] == ["arn:aws:sns:us-east-1:123456789012:sdbatch-jobs"]
    bucket = f"arn:aws:s3:::{aws_update.outputs['resultsBucket']}"
    # records and presigned uploads under their prefixes; never results (the agent's)
    assert sorted(grants["s3:PutObject"]) == [f"{bucket}/jobs/*", f"{bucket}/uploads/*"]
    assert grants["s3:DeleteObject"] == [f"{bucket}/jobs/*"]
    assert sorted(grants["s3:GetObject"]) == [f"{bucket}/jobs/*", f"{bucket}/results/*"]
    assert grants["s3:ListBucket"] == [bucket]


def test_karpenter_controller_is_scoped(aws_update):
    doc = json.loads(aws_update.one(ROLE_POLICY, "sdbatch-karpenter-controller-policy")
                     .inputs["policy"])
    by_action = {a: s for s in doc["Statement"] for a in as_list(s["Action"])}
    # It may hand EC2 exactly the role its node class names, nothing else.
    node_role = aws_update.one("kubernetes:karpenter.k8s.aws/v1:EC2NodeClass").inputs["spec"]["role"]
    assert node_role.startswith("sdbatch-karpenter-nodes")
    assert by_action["iam:PassRole"]["Resource"] == [f"arn:aws:iam::123456789012:role/{node_role}"]
    assert by_action["ec2:TerminateInstances"]["Condition"]["StringEquals"] == {
        "aws:ResourceTag/kubernetes.io/cluster/sdbatch-eks": "owned"}
    assert by_action["sqs:ReceiveMessage"]["Resource"] == [
        "arn:aws:sqs:us-east-1:123456789012:sdbatch-eks-karpenter"]
    assert by_action["eks:DescribeCluster"]["Resource"] == [
        "arn:aws:eks:us-east-1:123456789012:cluster/sdbatch-eks"]
    assert all(r.startswith("arn:aws:ec2:us-east-1:")
               for st in doc["Statement"] if "ec2:RunInstances" in as_list(st["Action"])
               for r in st["Resource"])


def test_karpenter_controller_policy_has_upstreams_tag_scoping(aws_update):
    """Karpenter v1.8.1's CloudFormation: creation needs the cluster's tags in the request,
    use/tag/delete needs them on the resource, instance profiles are its own tagged ones."""
    doc = json.loads(aws_update.one(ROLE_POLICY, "sdbatch-karpenter-controller-policy")
                     .inputs["policy"])
    cluster = "kubernetes.io/cluster/sdbatch-eks"
    statements = doc["Statement"]

    def with_action(action):
        return [st for st in statements if action in as_list(st["Action"])]

    def tagged(st, kind):  # kind: RequestTag or ResourceTag
        return st.get("Condition", {}).get("StringEquals", {}).get(f"aws:{kind}/{cluster}") == "owned"

    # Created resources (instances, volumes, fleets, templates) only with the request tags.
    for action in ("ec2:RunInstances", "ec2:CreateFleet", "ec2:CreateLaunchTemplate"):
        for st in with_action(action):
            created = [r for r in st["Resource"] if any(
                f":{kind}/" in r for kind in ("instance", "volume", "fleet", "network-interface",
                                             "spot-instances-request"))]
            if created:
                assert tagged(st, "RequestTag"), (action, st)
            if any(":launch-template/" in r for r in st["Resource"]) and action != "ec2:CreateLaunchTemplate":
                assert tagged(st, "ResourceTag") or tagged(st, "RequestTag"), (action, st)
    for action in ("ec2:TerminateInstances", "ec2:DeleteLaunchTemplate",
                   "iam:AddRoleToInstanceProfile", "iam:RemoveRoleFromInstanceProfile",
                   "iam:DeleteInstanceProfile", "iam:TagInstanceProfile"):
        (st,) = with_action(action)
        assert tagged(st, "ResourceTag"), action
    (create_profile,) = with_action("iam:CreateInstanceProfile")
    assert tagged(create_profile, "RequestTag")
    assert create_profile["Condition"]["StringLike"] == {
        "aws:RequestTag/karpenter.k8s.aws/ec2nodeclass": "*"}
    # Tags added later to its instances: only these keys.
    later = [st for st in with_action("ec2:CreateTags") if tagged(st, "ResourceTag")]
    assert [st["Condition"]["ForAllValues:StringEquals"]["aws:TagKeys"] for st in later] == [
        ["eks:eks-cluster-name", "karpenter.sh/nodeclaim", "Name"]]
    # Unscoped ("*") only where AWS has no resource-level permission.
    unscoped = {a for st in statements if st["Resource"] == ["*"] for a in as_list(st["Action"])}
    assert unscoped <= {"pricing:GetProducts"} | {
        a for a in unscoped if a.startswith("ec2:Describe")}


def test_results_bucket_is_private_encrypted_tls_only_and_expires(aws_plan):
    block = aws_plan.one("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", "results").inputs
    assert {k: block[k] for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls",
                                  "restrictPublicBuckets")} == dict.fromkeys(
        ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets"), True)
    sse = aws_plan.one("aws:s3/bucketServerSideEncryptionConfiguration:"
                       "BucketServerSideEncryptionConfiguration", "results").inputs
    assert sse["rules"][0]["applyServerSideEncryptionByDefault"]["sseAlgorithm"] == "aws:kms"
    owner = aws_plan.one("aws:s3/bucketOwnershipControls:BucketOwnershipControls").inputs
    assert owner["rule"]["objectOwnership"] == "BucketOwnerEnforced"
    lifecycle = aws_plan.one("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration",
                             "results")
    expire = next(r for r in lifecycle.inputs["rules"] if r["id"] == "expire-results")
    assert expire["expiration"]["days"] == 30 and expire["status"] == "Enabled"
    assert expire["filter"]["prefix"] == "results/"


def test_bucket_policy_refuses_plain_http(aws_update):
    doc = json.loads(aws_update.one("aws:s3/bucketPolicy:BucketPolicy").inputs["policy"])
    (deny,) = doc["Statement"]
    assert deny["Effect"] == "Deny" and deny["Condition"] == {
        "Bool": {"aws:SecureTransport": "false"}}
    bucket = aws_update.one(BUCKET, "results")
    assert any(r.endswith("/*") for r in deny["Resource"]) and len(deny["Resource"]) == 2
    assert bucket.inputs.get("forceDestroy") is False


def test_expiry_follows_config(plan, aws_config_of):
    def shorter(p):
        p["aws"]["jobs"]["resultsExpiryDays"] = 7
    result = plan(aws_config_of(shorter), preview=True, stack=STACK)
    rules = result.one("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration", "results").inputs
    assert rules["rules"][0]["expiration"]["days"] == 7


def test_cluster_endpoint_is_private_or_restricted_and_secrets_encrypted(aws_plan):
    c = aws_plan.one("aws:eks/cluster:Cluster").inputs
    assert c["vpcConfig"]["endpointPrivateAccess"] is True
    assert c["vpcConfig"]["endpointPublicAccess"] is True
    assert c["vpcConfig"]["publicAccessCidrs"] == ["203.0.113.0/24"]
    assert c["encryptionConfig"]["resources"] == ["secrets"]
    assert c["enabledClusterLogTypes"] == ["api", "audit", "authenticator", "controllerManager",
                                           "scheduler"]
    assert c["accessConfig"]["authenticationMode"] == "API"
    assert c["version"] == "1.33"
    key = aws_plan.one("aws:kms/key:Key").inputs
    assert key["enableKeyRotation"] is True
    logs = aws_plan.one("aws:cloudwatch/logGroup:LogGroup", "sdbatch-eks-logs").inputs
    assert logs["name"] == "/aws/eks/sdbatch-eks/cluster" and logs["retentionInDays"] == 30


def test_no_public_cidrs_means_a_private_endpoint(plan, aws_config_of):
    def private(p):
        p["aws"]["cluster"]["publicAccessCidrs"] = []
    c = plan(aws_config_of(private), preview=True, stack=STACK).one("aws:eks/cluster:Cluster")
    assert c.inputs["vpcConfig"]["endpointPublicAccess"] is False
    assert "publicAccessCidrs" not in c.inputs["vpcConfig"]


def test_cluster_key_is_used_for_secrets(aws_update):
    c = aws_update.one("aws:eks/cluster:Cluster").inputs
    key_arn = c["encryptionConfig"]["provider"]["keyArn"]
    assert key_arn.startswith("arn:aws:kms:us-east-1:123456789012:key/")
    doc = json.loads(aws_update.one(ROLE_POLICY, "sdbatch-eks-cluster-kms").inputs["policy"])
    assert doc["Statement"][0]["Resource"] == [key_arn]


def test_nodes_are_private_and_pods_cannot_use_the_node_imds(aws_plan):
    for subnet in aws_plan.of_type("aws:ec2/subnet:Subnet"):
        assert subnet.inputs.get("mapPublicIpOnLaunch") in (None, False), subnet.name
    node_class = aws_plan.one("kubernetes:karpenter.k8s.aws/v1:EC2NodeClass").inputs["spec"]
    assert node_class["metadataOptions"]["httpTokens"] == "required"
    assert node_class["metadataOptions"]["httpPutResponseHopLimit"] == 1
    assert all(d["ebs"]["encrypted"] for d in node_class["blockDeviceMappings"])


def test_nfs_is_open_to_the_vpc_only(aws_plan):
    (rule,) = aws_plan.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
    assert rule.inputs["cidrIpv4"] == "10.40.0.0/16"
    assert (rule.inputs["fromPort"], rule.inputs["toPort"]) == (2049, 2049)
    fs = aws_plan.one("aws:efs/fileSystem:FileSystem").inputs
    assert fs["encrypted"] is True
