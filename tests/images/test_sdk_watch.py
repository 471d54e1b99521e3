"""A quiet Agones SDK watch is normal: the sidecar writes only on change.

A read that times out on an open watch ends it without an error; the follower re-reads
`/gameserver` (so a change made while reconnecting is never missed) and re-opens the watch
at once. Only a refused or broken connection is `agones-unavailable`.
"""

from __future__ import annotations

import threading
import time

import pytest
from sdfleet_webui import usersync
from sdfleet_webui.agones import AgonesSdk, AgonesUnavailable

from testing.helpers.servers import free_port
from tests.images.agones_sdk_stub import AgonesSdkStub


@pytest.fixture
def stub():
    s = AgonesSdkStub()
    yield s
    s.closed = True
    s.server.shutdown()


def test_a_quiet_watch_ends_without_an_error(stub):
    sdk = AgonesSdk(stub.port)
    started = time.monotonic()
    seen = list(sdk.watch(threading.Event(), read_timeout=0.6))
    # the first line (the state at connect), then silence ends the stream
    assert [g["status"]["state"] for g in seen] == ["Scheduled"]
    assert 0.5 < time.monotonic() - started < 5


def test_a_refused_watch_is_unavailable():
    sdk = AgonesSdk(free_port())
    with pytest.raises(AgonesUnavailable):
        list(sdk.watch(threading.Event(), read_timeout=0.5))


def test_the_follower_rereads_and_reopens_after_silence_without_warnings(stub, monkeypatch, capsys):
    logged = []
    monkeypatch.setattr(usersync, "log", lambda event, **f: logged.append(event))
    sdk = AgonesSdk(stub.port)
    real_watch = sdk.watch
    monkeypatch.setattr(sdk, "watch", lambda stop: real_watch(stop, read_timeout=0.4))
    follower = usersync.UserSync.__new__(usersync.UserSync)
    follower.sdk, follower.stop, follower.wake, follower.latest = sdk, threading.Event(), threading.Event(), None
    thread = threading.Thread(target=follower.watch, daemon=True)
    thread.start()
    try:
        time.sleep(2.0)   # several quiet periods
        # a change while the follower is between watches is still seen
        stub.allocate({"sdfleet.dev/identity": "u-abc"})
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and \
                (follower.latest or {}).get("status", {}).get("state") != "Allocated":
            time.sleep(0.05)
        assert follower.latest["status"]["state"] == "Allocated"
    finally:
        follower.stop.set()
        thread.join(timeout=5)
    assert "agones-unavailable" not in logged
    reads = [c for c in stub.calls if c[2] == "/gameserver"]
    watches = [c for c in stub.calls if c[2] == "/watch/gameserver"]
    assert len(watches) >= 3 and len(reads) >= 3, (len(watches), len(reads))
