"""Stack policies: relations between resources (bucket + its public access block, queue + DLQ)
and the GPU node budget."""

from __future__ import annotations

from components.config import LimitsConfig
from policy.sdfleet_policies import BUDGET_DEFAULT_MAX_GPU_NODES
from tests.policy.resources import res, violations
from tests.policy.test_resource_policies import GPU_POOL, KARPENTER_GPU, changed
from tools.preview import UNKNOWN_MARK

BUCKET = "aws:s3/bucket:Bucket"
PAB = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
SSE = "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
QUEUE = "aws:sqs/queue:Queue"
ALL_BLOCKED = {"bucket": UNKNOWN_MARK, "blockPublicAcls": True, "blockPublicPolicy": True,
               "ignorePublicAcls": True, "restrictPublicBuckets": True}


def test_bucket_with_full_public_access_block_passes_and_partial_or_none_fails():
    bucket = res(BUCKET, "results", {"forceDestroy": False})
    assert violations("s3-public-access-blocked", bucket, res(PAB, "results", ALL_BLOCKED, deps=[bucket])) == []

    partial = res(PAB, "results", {**ALL_BLOCKED, "restrictPublicBuckets": False}, deps=[bucket])
    found = violations("s3-public-access-blocked", bucket, partial)
    assert [v["resource"] for v in found] == [bucket.urn]
    assert "restrictPublicBuckets" in found[0]["message"]

    # A block that belongs to another bucket does not cover this one.
    other = res(BUCKET, "other", {})
    found = violations("s3-public-access-blocked", bucket, other,
                       res(PAB, "other", ALL_BLOCKED, deps=[other]))
    assert [v["resource"] for v in found] == [bucket.urn]


def test_bucket_named_literally_by_its_block_is_covered():
    bucket = res(BUCKET, "results", {"bucket": "sdfleet-results"})
    block = res(PAB, "results", {**ALL_BLOCKED, "bucket": "sdfleet-results"})
    assert violations("s3-public-access-blocked", bucket, block) == []


def test_bucket_encryption_config_passes_and_its_absence_fails():
    bucket = res(BUCKET, "results", {})
    sse = res(SSE, "results", {"bucket": UNKNOWN_MARK, "rules": [
        {"applyServerSideEncryptionByDefault": {"sseAlgorithm": "aws:kms"}}]}, deps=[bucket])
    assert violations("s3-encrypted", bucket, sse) == []
    found = violations("s3-encrypted", bucket)
    assert [(v["level"], v["resource"]) for v in found] == [("mandatory", bucket.urn)]


def test_queue_with_dlq_passes_and_queue_without_fails():
    dlq = res(QUEUE, "jobs-dlq", {"messageRetentionSeconds": 1209600})
    # In preview the redrive policy's JSON holds the DLQ's unknown ARN: a dependency on it.
    jobs = res(QUEUE, "jobs", {"redrivePolicy": UNKNOWN_MARK}, deps=[dlq])
    assert violations("sqs-dead-letter-queue", dlq, jobs) == []

    lonely = res(QUEUE, "lonely", {"visibilityTimeoutSeconds": 900})
    found = violations("sqs-dead-letter-queue", dlq, jobs, lonely)
    assert [v["resource"] for v in found] == [lonely.urn]


def test_redrive_policy_resource_counts_as_a_dlq():
    dlq = res(QUEUE, "jobs-dlq", {})
    jobs = res(QUEUE, "jobs", {})
    redrive = res("aws:sqs/redrivePolicy:RedrivePolicy", "jobs",
                  {"queueUrl": UNKNOWN_MARK, "redrivePolicy": UNKNOWN_MARK}, deps=[jobs, dlq])
    assert violations("sqs-dead-letter-queue", dlq, jobs, redrive) == []


def test_gpu_budget_counts_every_gpu_pool_against_the_configured_cap(stack_config_of):
    six = res("gcp:container/nodePool:NodePool", "l4", GPU_POOL)  # totalMaxNodeCount 6
    two = res("gcp:container/nodePool:NodePool", "t4", changed(GPU_POOL, "autoscaling.totalMaxNodeCount", 2))
    assert violations("gpu-node-budget", six, two, stack_config=stack_config_of(limits={"maxGpuNodes": 8})) == []
    found = violations("gpu-node-budget", six, two, stack_config=stack_config_of(limits={"maxGpuNodes": 7}))
    assert len(found) == 1 and found[0]["level"] == "mandatory"
    assert "up to 8 GPU nodes" in found[0]["message"] and "7" in found[0]["message"]


def test_gpu_budget_multiplies_per_zone_maxima_by_the_zones():
    per_zone = changed(changed(GPU_POOL, "autoscaling", {"minNodeCount": 0, "maxNodeCount": 3}),
                       "nodeLocations", ["us-central1-a", "us-central1-b"])
    pool = res("gcp:container/nodePool:NodePool", "l4", per_zone)
    # No stack config: the cap is the config model's default (16); 3 x 2 zones is within it.
    assert violations("gpu-node-budget", pool) == []
    wide = changed(per_zone, "autoscaling.maxNodeCount", 9)  # 9 x 2 = 18 > 16
    found = violations("gpu-node-budget", res("gcp:container/nodePool:NodePool", "l4", wide))
    assert "up to 18 GPU nodes" in found[0]["message"]


def test_gpu_budget_counts_karpenter_gpu_limits_and_refuses_unbounded_pools(stack_config_of):
    config = stack_config_of(limits={"maxGpuNodes": 8})
    karpenter = "kubernetes:karpenter.sh/v1:NodePool"
    assert violations("gpu-node-budget", res(karpenter, "gpu", KARPENTER_GPU), stack_config=config) == []
    over = changed(KARPENTER_GPU, "spec.limits", {"nvidia.com/gpu": "12", "cpu": "1000"})
    assert violations("gpu-node-budget", res(karpenter, "gpu", over), stack_config=config)
    unbounded = changed(KARPENTER_GPU, "spec.limits", {"cpu": "1000"})
    found = violations("gpu-node-budget", res(karpenter, "gpu", unbounded), stack_config=config)
    assert found and "no upper bound" in found[0]["message"]


def test_budget_default_matches_the_config_model():
    assert BUDGET_DEFAULT_MAX_GPU_NODES == LimitsConfig().max_gpu_nodes


def test_redrive_allow_policy_does_not_excuse_the_source_queue():
    # The allow policy depends on its DLQ (queueUrl) and on the source queue (in its JSON).
    dlq = res(QUEUE, "jobs-dlq", {})
    jobs = res(QUEUE, "jobs", {"visibilityTimeoutSeconds": 900})
    allow = res("aws:sqs/redriveAllowPolicy:RedriveAllowPolicy", "jobs-dlq",
                {"queueUrl": UNKNOWN_MARK, "redriveAllowPolicy": UNKNOWN_MARK}, deps=[dlq, jobs])
    found = violations("sqs-dead-letter-queue", dlq, jobs, allow)
    assert jobs.urn in [v["resource"] for v in found]


def test_property_dependencies_tell_the_queue_from_its_dlq():
    """With the engine's property dependencies (the real pack), a RedrivePolicy resource covers
    only the queue in its queueUrl, and its target is a DLQ."""
    from pulumi_policy import PolicyCustomTimeouts, PolicyResource, PolicyResourceOptions, StackValidationArgs

    from policy.sdfleet_policies import POLICIES

    def resource(type_, name, deps=(), prop_deps=None):
        opts = PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [])
        return PolicyResource(type_, {}, f"urn:{name}", name, opts, None, None, list(deps),
                              prop_deps or {})

    dlq, jobs, other = resource(QUEUE, "dlq"), resource(QUEUE, "jobs"), resource(QUEUE, "other")
    redrive = resource("aws:sqs/redrivePolicy:RedrivePolicy", "redrive", deps=[jobs, dlq, other],
                       prop_deps={"queueUrl": [jobs], "redrivePolicy": [dlq]})
    reported = []
    policy = next(p for p in POLICIES if p.name == "sqs-dead-letter-queue")
    policy.validate(StackValidationArgs([dlq, jobs, other, redrive]),
                    lambda message, urn=None: reported.append(urn))
    assert reported == ["urn:other"]
