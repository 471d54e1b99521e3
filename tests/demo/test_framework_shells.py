"""The session banner must not break any framework's page: each real page shell (Gradio 4,
Gradio 5, ComfyUI's frontend; tests/demo/framework_shells.py) is loaded in headless Chromium
straight from its server and through the real trusted front (on the WebUI image's Python),
and the framework's own script must do the same both ways (its custom element defined, its
app mounted, the same elements rendered into its root) with no error from the banner's
script, while the banner shows through the front. (The shells run without their servers'
APIs, so they log their own errors, in an order that varies: those are not compared.)"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By

from testing.helpers.servers import free_port
from tests.demo.conftest import Person
from tests.demo.framework_shells import SHELLS, ShellServer, shell
from tests.images.agones_sdk_stub import AgonesSdkStub

REPO = Path(__file__).resolve().parents[2]
WEBUI_PYTHON = REPO / ".venvs" / "webui" / "bin" / "python"
IDENTITY = "g-100000000000000000009"
FRONT = """
import asyncio, sys
from sdfleet_webui.front import Front, FrontConfig
async def main():
    front = Front(FrontConfig(host="127.0.0.1", port=int(sys.argv[1]),
                              upstream=f"http://127.0.0.1:{sys.argv[2]}", agones_port=int(sys.argv[3]),
                              idle_seconds=1800.0, max_session_seconds=28800.0, warn_seconds=3600.0))
    await front.start()
    print("ready", flush=True)
    await asyncio.Event().wait()
asyncio.run(main())
"""


class Browser(Person):
    def __init__(self):  # noqa: D107 (no demo: a bare browser)
        class NoDemo:
            url = ""
        super().__init__(NoDemo(), "tester@example.com")
        self.driver.execute_cdp_cmd("Network.enable", {})

    def open(self, url: str, identity: str | None = None) -> None:
        headers = {"X-Sdfleet-Identity": identity} if identity else {}
        self.driver.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": headers})
        self.driver.get_log("browser")                                  # drop earlier entries
        self.driver.get(url)

    def errors(self) -> set[str]:
        """Console errors, without where they were raised ("<url> <line:col> <text>": the
        banner's tag moves the page's lines) nor the origin (another port)."""
        out = set()
        for entry in self.driver.get_log("browser"):
            if entry["level"] == "SEVERE":
                message = entry["message"].split(" ", 2)[-1]
                out.add(message.replace(self.base, "ORIGIN"))
        return out


@pytest.fixture(scope="module")
def browser():
    b = Browser()
    yield b
    b.close()


@pytest.mark.parametrize("name", sorted(SHELLS))
def test_the_banner_leaves_each_frameworks_page_working(name, browser, tmp_path):
    root = shell(name)
    probe, root_selector = SHELLS[name][3], SHELLS[name][4]
    server = ShellServer(root, free_port()).start()
    sdk = AgonesSdkStub()
    sdk.allocate({"sdfleet.dev/identity": IDENTITY},
                 {"sdfleet.dev/allocated-at": repr(time.time() - 60)})
    front_port = free_port()
    front = subprocess.Popen([str(WEBUI_PYTHON), "-c", FRONT, str(front_port), str(server.port),
                              str(sdk.port)], cwd=tmp_path, stdout=subprocess.PIPE, text=True,
                             env={"PYTHONPATH": str(REPO / "images" / "webui"), "PATH": "/usr/bin:/bin"})
    try:
        assert front.stdout.readline().strip() == "ready"
        results = {}
        for how, url, identity in (("direct", f"http://127.0.0.1:{server.port}/", None),
                                   ("front", f"http://127.0.0.1:{front_port}/", IDENTITY)):
            browser.base = url.rstrip("/")
            browser.open(url, identity)
            ran = browser.wait_for(f"{name}'s own script", lambda: browser.driver.execute_script(
                f"return document.readyState === 'complete' && ({probe})"), timeout=30)
            time.sleep(1.0)                                            # late errors, the banner
            rendered = browser.driver.execute_script(
                "return document.querySelector(arguments[0]).querySelectorAll('*').length",
                root_selector)
            results[how] = {"ran": ran, "errors": browser.errors(), "rendered": rendered,
                            "banner": [e.text for e in browser.driver.find_elements(
                                By.ID, "sdfleet-session-banner")]}
        assert results["direct"]["ran"] and results["front"]["ran"]
        assert results["front"]["rendered"] == results["direct"]["rendered"], results
        ours = [e for e in results["front"]["errors"] if "_sdfleet" in e]
        assert not ours, ours
        assert results["direct"]["banner"] == []
        assert len(results["front"]["banner"]) == 1
        assert "Your session ends in" in results["front"]["banner"][0]
    finally:
        front.terminate()
        front.wait(10)
        server.stop()
        sdk.close()
