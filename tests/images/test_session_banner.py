"""The session's end, seen from the pod: the trusted front adds the banner's script to the
HTML pages it serves (nothing else changes), answers /_sdfleet/session with when and why
the session ends (reading it is not activity), and "keep working" is activity."""

from __future__ import annotations

import time

import pytest
import requests
from aiohttp import web
from sdfleet_webui.frontrules import session_end
from sdfleet_webui.sessionpage import TAG, inject_banner

from testing.helpers.servers import free_port
from tests.images.agones_sdk_stub import AgonesSdkStub
from tests.images.front_harness import Backend, FrontUnderTest

ALICE = "g-111"
PAGE = b"<!doctype html><html><head><title>WebUI</title></head><body><div id=app></div></body></html>"


class PageBackend(Backend):
    """The stand-in with an HTML page, a large one, and a gzip-encoded one."""

    async def _page(self, request: web.Request):
        self.requests.append({"path": request.path_qs, "headers": dict(request.headers)})
        if "gzip" in request.headers.get("Accept-Encoding", ""):
            import gzip
            return web.Response(body=gzip.compress(PAGE), content_type="text/html",
                                headers={"Content-Encoding": "gzip"})
        return web.Response(body=PAGE, content_type="text/html")

    def start(self):
        async def go():
            app = web.Application()
            app.router.add_get("/", self._page)
            app.router.add_route("*", "/{tail:.*}", self._echo)
            self.runner = web.AppRunner(app, access_log=None)
            await self.runner.setup()
            await web.TCPSite(self.runner, "127.0.0.1", self.port, reuse_address=True).start()
        self.lt.call(go())
        return self


@pytest.fixture
def pod():
    sdk, backend = AgonesSdkStub(), PageBackend("alice-webui").start()
    allocated = time.time() - 100
    sdk.allocate({"sdfleet.dev/identity": ALICE},
                 {"sdfleet.dev/allocated-at": repr(allocated)})
    front = FrontUnderTest(free_port(), backend.port, sdk.port, idle_seconds=1800.0,
                           max_session_seconds=3600.0, warn_seconds=600.0).start()
    yield sdk, backend, front, allocated
    front.stop()
    backend.stop()
    sdk.close()


def me(**headers) -> dict:
    return {"X-Sdfleet-Identity": ALICE, **headers}


def test_a_page_gets_the_banner_script_and_is_asked_for_uncompressed(pod):
    _, backend, front, _ = pod
    page = requests.get(front.url + "/", headers=me(**{
        "Accept": "text/html", "Sec-Fetch-Dest": "document", "Accept-Encoding": "gzip, br"}))
    assert page.status_code == 200
    assert page.content == PAGE.replace(b"</head>", TAG + b"</head>")
    assert int(page.headers["Content-Length"]) == len(page.content)
    assert "Accept-Encoding" not in backend.requests[-1]["headers"]
    script = requests.get(front.url + "/_sdfleet/session.js", headers=me())
    assert script.status_code == 200 and "sdfleet-session-banner" in script.text
    assert script.headers["Content-Type"].startswith("application/javascript")


def test_other_answers_pass_untouched(pod):
    _, backend, front, _ = pod
    fetched = requests.get(front.url + "/", headers=me(**{
        "Accept": "*/*", "Sec-Fetch-Dest": "empty", "Accept-Encoding": "gzip"}))
    assert fetched.headers.get("Content-Encoding") == "gzip"     # a script's fetch: as sent
    assert TAG not in fetched.content
    api = requests.get(front.url + "/sdapi/v1/options", headers=me(Accept="application/json"))
    assert api.json()["backend"] == "alice-webui"


def test_the_session_answer_says_when_and_why_and_reading_it_is_not_activity(pod):
    sdk, _, front, allocated = pod
    before = front.front.meter.last_activity
    state = requests.get(front.url + "/_sdfleet/session", headers=me()).json()
    assert front.front.meter.last_activity == before                # not activity
    assert state["reason"] == "idle" and state["canKeep"] is True
    assert state["endsAt"] == pytest.approx(allocated + 1800, abs=1)
    assert state["warnAt"] == pytest.approx(state["endsAt"] - 600, abs=0.01)
    kept = requests.post(front.url + "/_sdfleet/session/keep", headers=me()).json()
    assert kept["endsAt"] == pytest.approx(time.time() + 1800, abs=5)
    deadline = time.monotonic() + 5
    while not [c for c in sdk.calls if c[2] == "/metadata/annotation"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [c for c in sdk.calls if c[2] == "/metadata/annotation"]   # reported to Agones
    # Someone else never reads this person's session.
    assert requests.get(front.url + "/_sdfleet/session",
                        headers={"X-Sdfleet-Identity": "g-222"}).status_code == 421


def test_banner_tag_goes_in_once_where_it_can():
    assert inject_banner(b"<html><body>x</body></html>") == b"<html><body>x" + TAG + b"</body></html>"
    assert inject_banner(b"plain") == b"plain" + TAG
    once = inject_banner(PAGE)
    assert inject_banner(once) == once


def test_session_end_table():
    now = 10_000.0
    cases = [
        # annotations, front activity, idle, max -> (ends at, reason)
        ({"sdfleet.dev/allocated-at": str(now)}, None, 600, 3600, (now + 600, "idle")),
        ({"sdfleet.dev/allocated-at": str(now), "agones.dev/sdk-gpu-activity": str(now + 500)},
         now + 100, 600, 3600, (now + 1100, "idle")),
        ({"sdfleet.dev/allocated-at": str(now)}, now + 3500, 600, 3600, (now + 3600, "max-age")),
        ({"sdfleet.dev/allocated-at": str(now), "sdfleet.dev/budget-ends-at": str(now + 300)},
         now, 600, 3600, (now + 300, "budget")),
        ({}, None, None, None, (None, "")),
        ({"sdfleet.dev/allocated-at": "garbage"}, now, 600, None, (now + 600, "idle")),
    ]
    for annotations, activity, idle, longest, expected in cases:
        got = session_end(annotations, activity, idle, longest)
        assert (got.ends_at, got.reason) == expected, annotations
