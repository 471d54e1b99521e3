"""The emulator's own semantics (the router's tests rely on them too), and the Agones
client against it."""

from __future__ import annotations

import pytest

from tests.emulators.agones import AgonesEmulator, parse_label_selector
from tests.functions.conftest import call
from tests.functions import conftest  # noqa: F401  (puts functions/ on sys.path)
from shared.agones import AgonesClient, KubernetesUnavailable
from shared.config import KubernetesSettings


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
