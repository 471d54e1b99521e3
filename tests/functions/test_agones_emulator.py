"""The emulator's own semantics (the router's tests rely on them too), and the Agones
client against it."""

from __future__ import annotations

import json

import pytest
from shared.agones import AgonesClient, KubernetesUnavailable
from shared.config import KubernetesSettings

from testing.emulators.agones import AgonesEmulator
from testing.emulators.kube_api import parse_label_selector
from tests.functions import conftest  # noqa: F401  (puts functions/ on sys.path)
from tests.functions.conftest import call


@pytest.fixture
def emu():
    e = AgonesEmulator(token="tok", fleet="f").start()
    yield e
    e.stop()


def client_for(emu, **kw):
    env = {"K8S_API_URL": emu.url, "K8S_TOKEN": "tok", "FLEET_NAME": "f",
           "AGONES_NAMESPACE": "default", **kw}
    return AgonesClient(KubernetesSettings.from_env(env))


def test_label_selector_syntax():
    labels = {"a": "1", "b": "2"}
    assert parse_label_selector("a=1,b==2")(labels)
    assert not parse_label_selector("a!=1")(labels)
    assert parse_label_selector("a in (1,3), !c, b")(labels)
    assert not parse_label_selector("b notin (2)")(labels)


def test_bearer_token_required(emu):
    status, body, _ = call("GET", emu.url + "/apis/agones.dev/v1/namespaces/default/gameservers")
    assert status == 401 and body["kind"] == "Status"
    status, body, _ = call("GET", emu.url + "/apis/agones.dev/v1/namespaces/default/gameservers",
                           {"Authorization": "Bearer tok"})
    assert status == 200 and body["kind"] == "GameServerList"


def test_allocation_labels_and_unallocated_when_empty(emu):
    emu.add_ready("gs-1", "127.0.0.1", 9001)
    client = client_for(emu)
    first = client.allocate("g-1", "a@example.com", 1.5)
    assert first.state == "Allocated" and first.game_server == "gs-1"
    assert first.target == "127.0.0.1:9001"
    gs = client.get("gs-1")
    assert gs.state == "Allocated" and gs.identity == "g-1" and gs.allocated_at == 1.5
    assert client.allocate("g-2", "b@example.com", 2.0).state == "UnAllocated"
    emu.add_ready("gs-x", fleet="another-fleet")
    assert client.allocate("g-3", "c@example.com", 3.0).state == "UnAllocated"


def test_paged_list_and_delete_with_uid_precondition(emu):
    for i in range(5):
        emu.add_ready(f"gs-{i}")
    client = client_for(emu)
    page, token = client.list("agones.dev/fleet=f", limit=2)
    assert [g.name for g in page] == ["gs-0", "gs-1"] and token
    page2, token2 = client.list("agones.dev/fleet=f", limit=2, continue_token=token)
    assert [g.name for g in page2] == ["gs-2", "gs-3"]
    page3, token3 = client.list("agones.dev/fleet=f", limit=2, continue_token=token2)
    assert [g.name for g in page3] == ["gs-4"] and token3 == ""
    with pytest.raises(Exception):
        client.delete("gs-0", uid="not-its-uid")
    assert client.delete("gs-0", uid=page[0].uid) is True
    assert client.delete("gs-0") is False
    assert client.get("gs-0") is None


def test_client_retries_then_gives_up(emu):
    emu.add_ready("gs-1")
    client = client_for(emu)
    emu.fail_next(429, count=2, retry_after=1)
    assert client.get("gs-1").name == "gs-1"
    emu.fail_next(502, count=10)
    with pytest.raises(KubernetesUnavailable):
        client.get("gs-1")


def test_client_refuses_plain_http_off_loopback():
    with pytest.raises(ValueError):
        AgonesClient(KubernetesSettings.from_env(
            {"K8S_API_URL": "http://10.0.0.1", "FLEET_NAME": "f", "K8S_TOKEN": "t"}))


# --- Agones's own validation on create (testing/emulators/agones_validation.py) ---------------------

def _fleet(containers=("webui",), container=None, ports=None, **spec) -> dict:
    gs_spec = {"ports": ports if ports is not None else
               [{"name": "p", "portPolicy": "None", "containerPort": 7860, "protocol": "TCP"}],
               "template": {"spec": {"containers": [
                   {"name": n, "image": "img",
                    "resources": {"requests": {"cpu": "1"}, "limits": {"cpu": "2"}}}
                   for n in containers]}}}
    if container is not None:
        gs_spec["container"] = container
    return {"apiVersion": "agones.dev/v1", "kind": "Fleet", "metadata": {"name": "f"},
            "spec": {"template": {"spec": gs_spec}, **spec}}


def _autoscaler(policy: dict) -> dict:
    return {"apiVersion": "autoscaling.agones.dev/v1", "kind": "FleetAutoscaler",
            "metadata": {"name": "fa"}, "spec": {"fleetName": "f", "policy": policy}}


def _buffer(size, min_replicas=0, max_replicas=8) -> dict:
    return {"type": "Buffer", "buffer": {"bufferSize": size, "minReplicas": min_replicas,
                                         "maxReplicas": max_replicas}}


def _create(emu, obj) -> tuple[int, dict]:
    plural = {"Fleet": "fleets", "GameServer": "gameservers",
              "FleetAutoscaler": "fleetautoscalers"}[obj["kind"]]
    group = obj["apiVersion"].split("/")[0]
    status, body, _ = call("POST", f"{emu.url}/apis/{group}/v1/namespaces/default/{plural}",
                           {"Authorization": "Bearer tok", "Content-Type": "application/json"},
                           json.dumps(obj).encode())
    return status, body


def test_fleet_with_two_containers_needs_the_game_server_container(emu):
    # agones gameserver.go (*GameServerSpec).Validate: ErrContainerRequired.
    status, body = _create(emu, _fleet(containers=("webui", "user-sync")))
    assert status == 422 and body["reason"] == "Invalid"
    assert {"field": "spec.template.spec.container",
            "message": "Required value: Container is required when using multiple containers "
                       "in the pod template"} in body["details"]["causes"]
    status, body = _create(emu, _fleet(containers=("webui", "user-sync"), container="webui"))
    assert status == 201, body
    assert ("Fleet", "default", "f") in emu.created


def test_fleet_container_must_name_one_of_its_containers(emu):
    status, body = _create(emu, _fleet(containers=("webui", "user-sync"), container="gpu"))
    assert status == 422 and "Could not find a container named gpu" in body["message"]


def test_one_container_needs_no_name(emu):
    assert _create(emu, _fleet())[0] == 201


@pytest.mark.parametrize("port,fragment", [
    ({"name": "p", "portPolicy": "Dynamic", "containerPort": 7860, "hostPort": 7000},
     ".hostPort: Forbidden: HostPort cannot be specified with a Dynamic or Passthrough"),
    ({"name": "p", "portPolicy": "Static", "hostPort": 7000},
     ".containerPort: Required value: ContainerPort must be defined"),
    ({"name": "p", "portPolicy": "Passthrough", "containerPort": 7860},
     "ContainerPort cannot be specified with Passthrough PortPolicy"),
    ({"name": "p", "portPolicy": "None", "containerPort": 7860, "container": "other"},
     "Container must be empty or the name of a container in the pod template"),
])
def test_port_rules(emu, port, fragment):
    status, body = _create(emu, _fleet(ports=[port]))
    assert status == 422 and fragment in body["message"], body["message"]


def test_port_policy_none_needs_its_feature_gate(emu):
    emu.set_feature_gates("PortPolicyNone=false")
    status, body = _create(emu, _fleet())
    assert status == 422 and "PortPolicyNone" in body["message"]


def test_requests_above_limits_are_refused(emu):
    fleet = _fleet()
    fleet["spec"]["template"]["spec"]["template"]["spec"]["containers"][0]["resources"] = {
        "requests": {"memory": "2Gi"}, "limits": {"memory": "1Gi"}}
    status, body = _create(emu, fleet)
    assert status == 422 and "must be less than or equal to memory limit of 1Gi" in body["message"]


def test_fleet_name_and_strategy(emu):
    fleet = _fleet(strategy={"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "100%"}})
    fleet["metadata"]["name"] = "x" * 64
    status, body = _create(emu, fleet)
    assert status == 422
    assert "metadata.name: Too long" in body["message"]
    assert "maxSurge: Invalid value: '100%': must be between 1% and 99%" in body["message"]


@pytest.mark.parametrize("policy,fragment", [
    # agones fleetautoscaler.go (*BufferPolicy).ValidateBufferPolicy
    (_buffer(0), "bufferSize: Invalid value: 0"),
    (_buffer(3, min_replicas=2), "minReplicas should be bigger than or equal to bufferSize"),
    (_buffer(9, max_replicas=8), "maxReplicas should be bigger than or equal to bufferSize"),
    (_buffer(1, min_replicas=5, max_replicas=4), "minReplicas should be smaller than maxReplicas"),
    (_buffer("50%", min_replicas=0), "minReplicas: Invalid value: 0"),
    (_buffer("100%", min_replicas=1), "bufferSize should be between 1% and 99%"),
])
def test_buffer_policy_rules(emu, policy, fragment):
    status, body = _create(emu, _autoscaler(policy))
    assert status == 422 and fragment in body["message"], body["message"]


@pytest.mark.parametrize("policy", [_buffer(1), _buffer(2, min_replicas=2), _buffer(2, 3, 8),
                                    _buffer("20%", min_replicas=1)])
def test_buffer_policy_admitted(emu, policy):
    assert _create(emu, _autoscaler(policy))[0] == 201


def _chain(cron="0 8 * * 1-5", timezone="Europe/Berlin", duration="10h", ids=("peak", "default")):
    return {"type": "Chain", "chain": [
        {"id": ids[0], "type": "Schedule", "schedule": {
            "activePeriod": {"timezone": timezone, "startCron": cron, "duration": duration},
            "policy": _buffer(2)}},
        {"id": ids[1], **_buffer(1)}]}


def test_schedule_and_chain_need_the_scheduled_autoscaler_gate(emu):
    status, body = _create(emu, _autoscaler(_chain()))
    assert status == 422 and "Unsupported value: 'Chain'" in body["message"]
    emu.set_feature_gates("ScheduledAutoscaler=true")
    assert _create(emu, _autoscaler(_chain()))[0] == 201


@pytest.mark.parametrize("chain,fragment", [
    (_chain(cron="61 25 * * 9"), "invalid startCron"),
    (_chain(cron="CRON_TZ=UTC 0 8 * * *"), "CRON_TZ or TZ used in activePeriod is not supported"),
    (_chain(timezone="Mars/Olympus"), "Error parsing timezone"),
    (_chain(duration="10 hours"), "invalid duration"),
    (_chain(ids=("same", "same")), "id of chain entry must be unique"),
])
def test_chain_rules(emu, chain, fragment):
    emu.set_feature_gates("ScheduledAutoscaler=true")
    status, body = _create(emu, _autoscaler(chain))
    assert status == 422 and fragment in body["message"], body["message"]


def test_fixed_interval_must_be_positive(emu):
    obj = _autoscaler(_buffer(1))
    obj["spec"]["sync"] = {"type": "FixedInterval", "fixedInterval": {"seconds": -5}}
    status, body = _create(emu, obj)
    assert status == 422 and "spec.sync.fixedInterval.seconds" in body["message"]


# ---- faults after the side effect -------------------------------------------------------------
GSA = "/apis/allocation.agones.dev/v1/namespaces/default/gameserverallocations"
ALLOCATION = (b'{"apiVersion": "allocation.agones.dev/v1", "kind": "GameServerAllocation",'
              b' "spec": {"selectors": [{"matchLabels": {"agones.dev/fleet": "f"}}]}}')


def _post_allocation(emu, timeout=5):
    return call("POST", emu.url + GSA, {"Authorization": "Bearer tok",
                                        "Content-Type": "application/json"}, ALLOCATION,
                timeout=timeout)


def test_fault_after_status_applies_then_answers_the_error(emu):
    emu.add_ready("gs-1")
    emu.fail_after(mode="status", status=504, method="POST")
    status, body, _ = _post_allocation(emu)
    assert status == 504 and body["reason"] == "InjectedFaultAfterSideEffect"
    assert emu.game_server("gs-1")["status"]["state"] == "Allocated"     # it was applied


def test_fault_after_drop_applies_then_closes_without_an_answer(emu):
    import http.client
    emu.add_ready("gs-1")
    emu.fail_after(mode="drop", method="POST")
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError, OSError)):
        _post_allocation(emu)
    assert emu.game_server("gs-1")["status"]["state"] == "Allocated"


def test_fault_after_delay_answers_after_the_client_gave_up(emu):
    import socket
    emu.add_ready("gs-1")
    emu.fail_after(mode="delay", delay=1.0, method="POST")
    with pytest.raises((socket.timeout, TimeoutError, OSError)):
        _post_allocation(emu, timeout=0.3)
    assert emu.game_server("gs-1")["status"]["state"] == "Allocated"


def test_after_request_hook_sees_the_applied_request(emu):
    emu.add_ready("gs-1")
    seen = []
    emu.after_request = lambda method, path, status: seen.append(
        (method, status, emu.game_server("gs-1")["status"]["state"]))
    assert _post_allocation(emu)[0] == 201
    assert seen == [("POST", 201, "Allocated")]
    emu.reset()
    assert emu.after_request is None
