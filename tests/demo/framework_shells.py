"""The frameworks' own page shells, from their published packages: Gradio 4 and 5 (the
`gradio/templates/frontend` of the gradio wheel, rendered as Gradio renders it: a Jinja
template with the app's config) and ComfyUI's frontend (`comfyui_frontend_package/static`).
AUTOMATIC1111's page is Gradio 3.41, which the demo's stand-in WebUI already serves.

Wheels are fetched once with pip (its cache keeps them) and unpacked into
~/.cache/sdfleet/framework-shells/<package>-<version>/, keyed by the version: a pinned
version never changes, so a new machine downloads once and CI reuses it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

from aiohttp import web

CACHE = Path(os.environ.get("SDFLEET_SHELL_CACHE",
                            Path.home() / ".cache" / "sdfleet" / "framework-shells"))

# name -> (package, version, folder in the wheel, what shows the framework's page script ran,
#          the element the framework renders into)
SHELLS = {
    "gradio-4": ("gradio", "4.44.1", "gradio/templates/frontend/",
                 "customElements.get('gradio-app') !== undefined", "gradio-app"),
    "gradio-5": ("gradio", "5.50.0", "gradio/templates/frontend/",
                 "customElements.get('gradio-app') !== undefined", "gradio-app"),
    "comfyui": ("comfyui-frontend-package", "1.27.10", "comfyui_frontend_package/static/",
                "document.querySelector('#vue-app') !== null && "
                "document.querySelector('#vue-app').getAttribute('data-v-app') !== null", "#vue-app"),
}


def shell(name: str) -> Path:
    """The unpacked frontend folder of a shell (index.html rendered)."""
    package, version, prefix = SHELLS[name][:3]
    target = CACHE / f"{package}-{version}"
    if (target / ".complete").exists():
        return target
    wheels = CACHE / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                    f"{package}=={version}", "-d", str(wheels)], check=True, timeout=600)
    wheel = next(wheels.glob(f"{package.replace('-', '_')}-{version}-*.whl"))
    shutil.rmtree(target, ignore_errors=True)
    with zipfile.ZipFile(wheel) as archive:
        for member in archive.namelist():
            if member.startswith(prefix) and not member.endswith("/"):
                out = target / member[len(prefix):]
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(archive.read(member))
    if package == "gradio":
        _render_gradio(target / "index.html")
    (target / ".complete").write_text(version)
    return target


def _render_gradio(index: Path) -> None:
    """As gradio's routes render it: Jinja with the app's config (a minimal Blocks config)."""
    import jinja2
    env = jinja2.Environment()
    env.filters["toorjson"] = lambda value: json.dumps(value)
    config = {"version": "sdfleet-test", "mode": "blocks", "title": "Gradio", "components": [],
              "dependencies": [], "layout": {"id": 0, "children": []}, "root": "",
              "body_css": {}, "thumbnail": None, "simple_description": None}
    index.write_text(env.from_string(index.read_text()).render(config=config,
                                                              gradio_api_info={}))


class ShellServer:
    """The shell's files over HTTP, as the framework's server serves them (with lengths)."""

    def __init__(self, root: Path, port: int):
        self.root, self.port = root, port
        self.loop = None

    def start(self) -> "ShellServer":
        import asyncio
        ready = threading.Event()

        def run():
            self.loop = asyncio.new_event_loop()
            app = web.Application()

            async def index(_request):
                return web.Response(body=(self.root / "index.html").read_bytes(),
                                    content_type="text/html")
            app.router.add_get("/", index)
            app.router.add_static("/", self.root, show_index=False)
            self.runner = web.AppRunner(app, access_log=None)
            self.loop.run_until_complete(self.runner.setup())
            self.loop.run_until_complete(web.TCPSite(self.runner, "127.0.0.1", self.port).start())
            ready.set()
            self.loop.run_forever()
        threading.Thread(target=run, daemon=True).start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        if self.loop:
            self.loop.call_soon_threadsafe(self.loop.stop)
