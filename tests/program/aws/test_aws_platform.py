"""The `cloud: aws` stack as a whole: outputs, parenting, tags, values resolved."""

from __future__ import annotations

import functools
import importlib
import inspect

from tests.program.aws.aws_fixtures import STACK, aws_config, aws_config_of, aws_plan, aws_update  # noqa: F401
from tests.program.conftest import assert_all_resolved
from tools.preview import UNKNOWN_MARK

LABELS = {"app": "sdfleet", "team": "example-artists", "cost-center": "example-0000"}


def test_every_value_resolves_in_update_mode(aws_update):
    assert_all_resolved(aws_update)
    out = aws_update.outputs
    assert out["apiUrl"] == "https://api0123456.execute-api.us-east-1.amazonaws.com/v1/jobs"
    assert out["apiKeyId"] == "[secret]" and out["kubeconfig"] == "[secret]"
    assert out["clusterName"] == "sdbatch-eks"
    assert out["resultsBucket"].startswith("sdbatch-results")
    assert out["completionTopicArn"] == "arn:aws:sns:us-east-1:123456789012:sdbatch-completions"
    assert set(out["queueUrls"]) == {"sdwebui", "comfyui"}


def test_preview_marks_computed_outputs_unknown_and_secrets_hidden(plan, aws_config):
    result = plan(aws_config, preview=True, stack=STACK)
    assert result.outputs["apiUrl"] == UNKNOWN_MARK
    assert result.outputs["kubeconfig"] == "[secret]"
    assert result.outputs["clusterName"] == "sdbatch-eks"


def test_every_resource_is_parented_to_a_component(aws_plan):
    urns = {r.urn: r for r in aws_plan.resources}
    (platform,) = aws_plan.of_type("sdfleet:aws:Platform")
    for r in aws_plan.resources:
        if r is platform or r.type == "sdfleet:Preflight":   # the two top-level parts
            continue
        assert r.parent in urns, f"{r.type} {r.name} is not inside the platform"
        assert urns[r.parent].type.startswith("sdfleet:"), f"{r.type} {r.name}"
    # components sit where their names say
    queue = aws_plan.one("aws:sqs/queue:Queue", "sdbatch-sdwebui-dlq")
    assert urns[queue.parent].type == "sdfleet:aws:RuntimeQueue"
    cluster = aws_plan.one("aws:eks/cluster:Cluster")
    assert urns[cluster.parent].type == "sdfleet:aws:EksCluster"
    pool = aws_plan.one("kubernetes:karpenter.sh/v1:NodePool")
    assert urns[pool.parent].type == "sdfleet:aws:Karpenter"


def test_kubernetes_objects_use_the_cluster_provider(aws_plan):
    (provider,) = aws_plan.of_type("pulumi:providers:kubernetes")
    kube = [r for r in aws_plan.resources if r.type.startswith("kubernetes:")]
    assert len(kube) >= 15
    for r in kube:
        assert r.provider and r.provider.startswith(provider.urn + "::"), f"{r.type} {r.name}"


@functools.lru_cache(maxsize=None)
def _takes_tags(type_token: str) -> bool:
    """Whether the typed pulumi_aws class of `type_token` has a `tags` argument."""
    _, module_path, class_name = type_token.split(":")
    module = module_path.split("/")[0]
    package = importlib.import_module(f"pulumi_aws.{'lambda_' if module == 'lambda' else module}")
    cls = getattr(package, class_name)
    return "tags" in inspect.signature(cls._internal_init).parameters


def test_cost_allocation_tags_on_everything_that_takes_tags(aws_update):
    tagged = 0
    for r in aws_update.resources:
        if not r.type.startswith("aws:") or not _takes_tags(r.type):
            continue
        tags = r.inputs.get("tags") or {}
        assert LABELS.items() <= tags.items(), f"{r.type} {r.name} lacks the labels: {tags}"
        tagged += 1
    assert tagged >= 50
    # nodes Karpenter launches carry them too
    node_class = aws_update.one("kubernetes:karpenter.k8s.aws/v1:EC2NodeClass").inputs
    assert LABELS.items() <= node_class["spec"]["tags"].items()


def test_changed_labels_reach_the_tags(plan, aws_config_of):
    def relabel(p):
        p["labels"] = {"app": "sdfleet", "owner": "example-team-b"}
    result = plan(aws_config_of(relabel), preview=True, stack=STACK)
    bucket = result.one("aws:s3/bucket:Bucket", "results").inputs
    assert bucket["tags"]["owner"] == "example-team-b" and "team" not in bucket["tags"]
