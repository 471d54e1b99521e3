"""The batch path on its registered inputs: queues, KEDA workers, Karpenter, models, API."""

from __future__ import annotations

import json

from tests.program.aws.aws_fixtures import STACK, aws_config, aws_config_of, aws_plan, aws_update, env_of  # noqa: F401

QUEUE = "aws:sqs/queue:Queue"
SUBSCRIPTION = "aws:sns/topicSubscription:TopicSubscription"
SCALED_JOB = "kubernetes:keda.sh/v1alpha1:ScaledJob"
SCALED_OBJECT = "kubernetes:keda.sh/v1alpha1:ScaledObject"
NODE_POOL = "kubernetes:karpenter.sh/v1:NodePool"
NODE_CLASS = "kubernetes:karpenter.k8s.aws/v1:EC2NodeClass"
RELEASE = "kubernetes:helm.sh/v3:Release"
JOB_TIMEOUT = 900


def _work_queues(result):
    return [q for q in result.of_type(QUEUE) if not q.inputs["name"].endswith("-dlq")]


def test_every_queue_has_a_dead_letter_queue(aws_update):
    queues = {q.inputs["name"]: q.inputs for q in aws_update.of_type(QUEUE)}
    work = _work_queues(aws_update)
    assert {q.inputs["name"] for q in work} == {"sdbatch-sdwebui", "sdbatch-comfyui",
                                                "sdbatch-eks-karpenter"}
    for q in work:
        redrive = json.loads(q.inputs["redrivePolicy"])
        dlq_name = redrive["deadLetterTargetArn"].rsplit(":", 1)[1]
        assert dlq_name == q.inputs["name"] + "-dlq" and dlq_name in queues
        assert queues[dlq_name]["messageRetentionSeconds"] == 14 * 24 * 3600
    for name in ("sdbatch-sdwebui", "sdbatch-comfyui"):
        assert json.loads(queues[name]["redrivePolicy"])["maxReceiveCount"] == 3
    for q in aws_update.of_type(QUEUE):
        assert q.inputs["sqsManagedSseEnabled"] is True


def test_runtime_queues_outlast_the_job(aws_plan):
    for name in ("sdbatch-sdwebui", "sdbatch-comfyui"):
        q = next(q for q in aws_plan.of_type(QUEUE) if q.inputs["name"] == name).inputs
        assert q["visibilityTimeoutSeconds"] > JOB_TIMEOUT
        assert q["receiveWaitTimeSeconds"] == 20


def test_visibility_and_receive_count_follow_config(plan, aws_config_of):
    def longer(p):
        p["aws"]["jobs"]["timeoutSeconds"] = 3600
        p["aws"]["jobs"]["maxReceiveCount"] = 5
    result = plan(aws_config_of(longer), preview=False, stack=STACK)
    q = next(q for q in result.of_type(QUEUE) if q.inputs["name"] == "sdbatch-sdwebui").inputs
    assert q["visibilityTimeoutSeconds"] > 3600
    assert json.loads(q["redrivePolicy"])["maxReceiveCount"] == 5
    job = result.one(SCALED_JOB).inputs["spec"]["jobTargetRef"]["template"]["spec"]
    assert env_of(job["containers"][0])["JOB_TIMEOUT_SECONDS"] == "3600"


def test_only_its_source_queue_may_redrive_into_a_dlq(aws_update):
    allows = aws_update.of_type("aws:sqs/redriveAllowPolicy:RedriveAllowPolicy")
    assert len(allows) == 3
    for a in allows:
        policy = json.loads(a.inputs["redriveAllowPolicy"])
        assert policy["redrivePermission"] == "byQueue"
        (source,) = policy["sourceQueueArns"]
        assert a.inputs["queueUrl"].endswith("/" + source.rsplit(":", 1)[1] + "-dlq")


def test_each_runtime_queue_gets_only_its_runtime_from_the_jobs_topic(aws_update):
    subs = aws_update.of_type(SUBSCRIPTION)
    assert len(subs) == 2
    jobs_topic = "arn:aws:sns:us-east-1:123456789012:sdbatch-jobs"
    for s in subs:
        runtime = s.name.removeprefix("sdbatch-").removesuffix("-subscription")
        assert s.inputs["topic"] == jobs_topic
        assert s.inputs["endpoint"] == f"arn:aws:sqs:us-east-1:123456789012:sdbatch-{runtime}"
        assert s.inputs["rawMessageDelivery"] is True
        assert s.inputs["filterPolicyScope"] == "MessageAttributes"
        assert json.loads(s.inputs["filterPolicy"]) == {"runtime": [runtime]}
    # the topic may send to that queue and no one else may
    policy = json.loads(aws_update.one("aws:sqs/queuePolicy:QueuePolicy", "sdwebui-from-topic")
                        .inputs["policy"])
    (st,) = policy["Statement"]
    assert st["Principal"] == {"Service": "sns.amazonaws.com"}
    assert st["Condition"] == {"ArnEquals": {"aws:SourceArn": jobs_topic}}


def test_completion_topic_exists_apart_from_the_jobs_topic(aws_plan):
    names = sorted(t.inputs["name"] for t in aws_plan.of_type("aws:sns/topic:Topic"))
    # and the operators' alarms topic (components/aws/alarms.py), apart from both
    assert names == ["sdbatch-completions", "sdbatch-jobs", "sdbatch-ops-alerts"]


def test_keda_trigger_reads_the_runtime_queue_with_scale_on_in_flight(aws_update):
    job = aws_update.one(SCALED_JOB).inputs["spec"]
    (trigger,) = job["triggers"]
    assert trigger["type"] == "aws-sqs-queue"
    meta = trigger["metadata"]
    assert meta["queueURL"] == "https://sqs.us-east-1.amazonaws.com/123456789012/sdbatch-sdwebui"
    # one Job per message, counted once whether it waits or is held (test_aws_keda.py)
    assert meta["scaleOnInFlight"] == "true"
    assert job["scalingStrategy"] == {"strategy": "default"}
    assert meta["activationQueueLength"] == "0" and meta["queueLength"] == "1"
    assert meta["awsRegion"] == "us-east-1"
    assert job["maxReplicaCount"] == 6
    assert trigger["authenticationRef"] == {"name": "keda-aws"}
    auth = aws_update.one("kubernetes:keda.sh/v1alpha1:TriggerAuthentication").inputs
    assert auth["spec"] == {"podIdentity": {"provider": "aws"}}

    obj = aws_update.one(SCALED_OBJECT).inputs["spec"]
    (trigger,) = obj["triggers"]
    assert trigger["metadata"]["scaleOnInFlight"] == "true"  # never scale in under a job
    assert trigger["metadata"]["queueLength"] == "2"
    assert obj["maxReplicaCount"] == 2 and obj["minReplicaCount"] == 0
    assert obj["scaleTargetRef"] == {"name": "sdfleet-comfyui"}


def test_worker_pods_get_their_sigterm_on_disruption_and_land_on_gpu_nodes(aws_update):
    """Karpenter's drain skips `do-not-disrupt` pods, also on a Spot interruption: the agent
    would never get its SIGTERM. Consolidation is kept off running jobs by the NodePool."""
    job = aws_update.one(SCALED_JOB).inputs["spec"]["jobTargetRef"]
    template = job["template"]
    assert "karpenter.sh/do-not-disrupt" not in (template["metadata"].get("annotations") or {})
    disruption = aws_update.one(NODE_POOL).inputs["spec"]["disruption"]
    assert disruption["consolidationPolicy"] == "WhenEmpty"
    spec = template["spec"]
    assert spec["nodeSelector"] == {"sdfleet.dev/pool": "gpu"}
    pool = aws_update.one(NODE_POOL).inputs["spec"]["template"]["spec"]
    (taint,) = pool["taints"]
    assert spec["tolerations"] == [{"key": taint["key"], "operator": "Equal",
                                    "value": taint["value"], "effect": taint["effect"]}]
    # a Spot interruption leaves two minutes: the pod's grace fits inside them
    assert spec["terminationGracePeriodSeconds"] < 120
    # The WebUI is a native sidecar, so the pod completes when the agent's job is done.
    (webui,) = spec["initContainers"]
    assert webui["restartPolicy"] == "Always"
    assert webui["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert webui["volumeMounts"] == [{"name": "models", "mountPath": "/models", "readOnly": True},
                                     {"name": "scratch", "mountPath": "/scratch"}]
    assert webui["image"].startswith(
        "123456789012.dkr.ecr.us-east-1.amazonaws.com/sdbatch/webui-automatic1111:c-")
    (agent,) = spec["containers"]
    env = env_of(agent)
    assert env["AGENT_MODE"] == "job" and env["RUNTIME"] == "sdwebui"
    assert env["DEAD_LETTER_QUEUE_URL"].endswith("/sdbatch-sdwebui-dlq")
    assert env["COMPLETION_TOPIC_ARN"].endswith(":sdbatch-completions")
    assert env["RESULTS_BUCKET"] == aws_update.outputs["resultsBucket"]
    assert env["ALLOWED_IMAGE_HOSTS"] == "images.example.com"
    assert int(env["HEARTBEAT_SECONDS"]) * 2 <= int(env["VISIBILITY_TIMEOUT_SECONDS"])
    assert spec["serviceAccountName"] == "agent-sdwebui"
    assert job["backoffLimit"] == 0  # retries are the queue's, counted by maxReceiveCount

    deployment = aws_update.one("kubernetes:apps/v1:Deployment", "comfyui").inputs["spec"]
    assert "karpenter.sh/do-not-disrupt" not in (
        deployment["template"]["metadata"].get("annotations") or {})
    pod = deployment["template"]["spec"]
    # a native sidecar there too: the WebUI outlives the agent on termination
    assert [c["name"] for c in pod["initContainers"]] == ["webui"]
    assert pod["initContainers"][0]["restartPolicy"] == "Always"
    assert [c["name"] for c in pod["containers"]] == ["agent"]
    assert env_of(pod["containers"][0])["AGENT_MODE"] == "service"


def test_agent_env_satisfies_the_agents_own_settings(aws_update):
    import sys

    from tools.preview import ROOT
    sys.path.insert(0, str(ROOT / "images" / "queue-agent"))
    try:
        from sdfleet_agent.settings import load_settings
    finally:
        sys.path.remove(str(ROOT / "images" / "queue-agent"))
    for kind in (SCALED_JOB, "kubernetes:apps/v1:Deployment"):
        spec = aws_update.one(kind).inputs["spec"]
        template = spec.get("jobTargetRef", spec)["template"]
        agent = next(c for c in template["spec"]["containers"] if c["name"] == "agent")
        settings = load_settings(env_of(agent))
        assert settings.job_timeout_seconds == JOB_TIMEOUT


def test_karpenter_node_pool_allows_spot_and_on_demand_gpus(aws_plan):
    pool = aws_plan.one(NODE_POOL).inputs["spec"]
    reqs = {r["key"]: r for r in pool["template"]["spec"]["requirements"]}
    assert reqs["karpenter.sh/capacity-type"] == {"key": "karpenter.sh/capacity-type",
                                                  "operator": "In",
                                                  "values": ["spot", "on-demand"]}
    assert reqs["karpenter.k8s.aws/instance-family"]["values"] == ["g5", "g6"]
    assert pool["template"]["spec"]["taints"] == [
        {"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}]
    assert pool["template"]["spec"]["nodeClassRef"] == {
        "group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "gpu"}
    assert pool["limits"] == {"nvidia.com/gpu": "8"}
    disruption = pool["disruption"]
    assert disruption["consolidationPolicy"] == "WhenEmpty"  # never under a running job
    assert disruption["budgets"] and all("nodes" in b for b in disruption["budgets"])
    # draining waits at least as long as a job may run
    grace = int(pool["template"]["spec"]["terminationGracePeriod"].rstrip("s"))
    assert grace > JOB_TIMEOUT


def test_node_class_is_bottlerocket_in_private_subnets(aws_update):
    spec = aws_update.one(NODE_CLASS).inputs["spec"]
    assert spec["amiSelectorTerms"] == [{"alias": "bottlerocket@latest"}]
    subnets = {s.name: s for s in aws_update.of_type("aws:ec2/subnet:Subnet")}
    assert [t["id"] for t in spec["subnetSelectorTerms"]] == [
        f"{n}-id" for n in ("sdbatch-private-0", "sdbatch-private-1", "sdbatch-private-2")]
    assert all(n in subnets for n in ("sdbatch-private-0", "sdbatch-private-1"))
    assert spec["securityGroupSelectorTerms"] == [{"id": "sg-0example0cluster"}]
    assert "userData" not in spec  # no time-slicing (refused by the config)


def test_gpu_settings_follow_config(plan, aws_config_of):
    def tune(p):
        p["aws"]["gpu"]["families"] = ["g4dn"]
        p["aws"]["gpu"]["limit"] = 2
    result = plan(aws_config_of(tune), preview=True, stack=STACK)
    pool = result.one(NODE_POOL).inputs["spec"]
    reqs = {r["key"]: r["values"] for r in pool["template"]["spec"]["requirements"]}
    assert reqs["karpenter.k8s.aws/instance-family"] == ["g4dn"]
    assert pool["limits"] == {"nvidia.com/gpu": "2"}


def test_karpenter_gets_interruption_notices(aws_update):
    rules = aws_update.of_type("aws:cloudwatch/eventRule:EventRule")
    kinds = {json.loads(r.inputs["eventPattern"])["detail-type"][0] for r in rules}
    assert kinds == {"AWS Health Event", "EC2 Spot Instance Interruption Warning",
                     "EC2 Instance Rebalance Recommendation",
                     "EC2 Instance State-change Notification"}
    queue = "arn:aws:sqs:us-east-1:123456789012:sdbatch-eks-karpenter"
    targets = aws_update.of_type("aws:cloudwatch/eventTarget:EventTarget")
    assert len(targets) == 4 and {t.inputs["arn"] for t in targets} == {queue}
    release = aws_update.one(RELEASE, "karpenter").inputs
    assert release["values"]["settings"] == {"clusterName": "sdbatch-eks",
                                             "interruptionQueue": "sdbatch-eks-karpenter"}


def test_helm_releases_are_pinned(aws_plan):
    releases = {r.inputs["chart"]: r.inputs for r in aws_plan.of_type(RELEASE)}
    assert set(releases) == {"oci://public.ecr.aws/karpenter/karpenter", "keda"}
    # An OCI chart is named by its reference, with no repo: the provider would look for
    # <repo>/index.yaml, which an OCI registry does not serve (pulumi-kubernetes#2158).
    karpenter = releases["oci://public.ecr.aws/karpenter/karpenter"]
    assert not karpenter.get("repositoryOpts", {}).get("repo")
    assert releases["keda"]["repositoryOpts"]["repo"] == "https://kedacore.github.io/charts"
    for chart, r in releases.items():
        assert r["version"].count(".") == 2 and r["version"][0].isdigit(), chart
        # controllers stay on the system nodes, never on the GPU nodes they scale
        assert r["values"]["nodeSelector"] == {"sdfleet.dev/pool": "system"}


def test_system_node_group_is_managed_and_untainted(aws_plan):
    group = aws_plan.one("aws:eks/nodeGroup:NodeGroup").inputs
    assert group["amiType"].startswith("BOTTLEROCKET")
    assert group["capacityType"] == "ON_DEMAND"
    assert group["scalingConfig"]["minSize"] == 2 and group["labels"] == {"sdfleet.dev/pool": "system"}
    assert "taints" not in group


def test_network_spans_three_zones_with_nat_and_s3_endpoint(aws_plan):
    subnets = aws_plan.of_type("aws:ec2/subnet:Subnet")
    private = [s.inputs for s in subnets if "private" in s.name]
    # registration order is not deterministic; the zone of each range is
    assert sorted((s["availabilityZone"], s["cidrBlock"]) for s in private) == [
        ("us-east-1a", "10.40.0.0/18"), ("us-east-1b", "10.40.64.0/18"),
        ("us-east-1c", "10.40.128.0/18")]
    assert len(aws_plan.of_type("aws:ec2/natGateway:NatGateway")) == 3
    endpoint = aws_plan.one("aws:ec2/vpcEndpoint:VpcEndpoint").inputs
    assert endpoint["serviceName"] == "com.amazonaws.us-east-1.s3"
    assert endpoint["vpcEndpointType"] == "Gateway" and len(endpoint["routeTableIds"]) == 3


def test_models_volume_and_sync_job_follow_the_contract(aws_update):
    fs_id = aws_update.one("aws:efs/fileSystem:FileSystem").id
    ap = aws_update.one("aws:efs/accessPoint:AccessPoint")
    pv = aws_update.one("kubernetes:core/v1:PersistentVolume").inputs["spec"]
    assert pv["csi"] == {"driver": "efs.csi.aws.com", "volumeHandle": f"{fs_id}::{ap.id}"}
    assert ap.inputs["rootDirectory"]["path"] == "/models"
    assert len(aws_update.of_type("aws:efs/mountTarget:MountTarget")) == 3
    config_map = aws_update.one("kubernetes:core/v1:ConfigMap").inputs
    document = json.loads(config_map["data"]["models.json"])
    assert document["defaultCheckpoint"] == "sdxl-base"
    assert document["models"][0] == {
        "name": "sdxl-base", "kind": "checkpoint", "source": "huggingface",
        "repo": "stabilityai/stable-diffusion-xl-base-1.0", "file": "sd_xl_base_1.0.safetensors",
        "required": True}
    assert document["models"][1]["required"] is False
    job = aws_update.one("kubernetes:batch/v1:Job").inputs
    assert job["metadata"]["name"] == aws_update.outputs["modelSyncJob"]
    (fetch,) = job["spec"]["template"]["spec"]["containers"]
    # the image's venv python by absolute path: no `python` is on the image's PATH
    assert fetch["command"][:3] == ["/opt/sdfleet/venv/bin/python", "-m", "sdfleet_webui.fetch"]
    assert "--models-file" in fetch["command"] and "/etc/sdfleet/models.json" in fetch["command"]
    mounts = {m["mountPath"]: m for m in fetch["volumeMounts"]}
    assert "/models" in mounts and mounts["/etc/sdfleet"]["readOnly"] is True
    assert "subPath" not in mounts["/models"]  # the EFS access point is the models folder


def test_a_changed_model_list_is_a_new_sync_job(plan, aws_config, aws_config_of):
    def more(p):
        p["models"]["items"].append({"name": "detail-lora", "kind": "lora", "source": "civitai",
                                     "civitaiVersionId": 128713})
    before = plan(aws_config, preview=True, stack=STACK).one("kubernetes:batch/v1:Job")
    after = plan(aws_config_of(more), preview=True, stack=STACK).one("kubernetes:batch/v1:Job")
    assert before.inputs["metadata"]["name"] != after.inputs["metadata"]["name"]


def test_model_tokens_reach_the_sync_job_only_as_files(plan, aws_config):
    assert not plan(aws_config, preview=True, stack=STACK).of_type("kubernetes:core/v1:Secret")
    config = {**aws_config, "sdfleet:civitaiToken": {"secure": "v1:example-ciphertext"}}
    result = plan(config, preview=False, stack=STACK)
    secret = result.one("kubernetes:core/v1:Secret").inputs
    assert secret["stringData"] == {"civitai-token": "[secret]"}
    pod = result.one("kubernetes:batch/v1:Job").inputs["spec"]["template"]["spec"]
    (fetch,) = pod["containers"]
    assert all("valueFrom" not in e and "TOKEN" not in e["name"] for e in fetch["env"])
    assert {"name": "tokens", "mountPath": "/var/run/sdfleet", "readOnly": True} \
        in fetch["volumeMounts"]
    assert {"name": "tokens", "secret": {"secretName": secret["metadata"]["name"],
                                         "defaultMode": 0o400}} in pod["volumes"]
    assert "offline-preview-placeholder" not in json.dumps([secret, pod])
