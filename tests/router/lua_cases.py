"""Unit cases for one router Lua module, run inside real nginx + Lua.

Each case is the body of a Lua function, given the module under its own name and
`check(condition, message)`; the handler answers "ok" or the first failed expectation, so a
broken rule shows up as its own message. Used by the tests of the hot path's small modules
(ttlcache.lua, pod_cookie.lua).
"""

from __future__ import annotations

import os
import tempfile
import textwrap
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

from testing.helpers.servers import free_port
from testing.router.harness import ROUTER_DIR, start_nginx

RUNNER = """
local {module} = require("sdfleet.{module}")
local failure
local function check(condition, message)
    if not condition and not failure then failure = message end
end
local cases = {{
{cases}
}}
local case = cases[ngx.var.arg_case]
if not case then ngx.status = 404 ngx.say("no such case") return end
case()
ngx.say(failure or "ok")
"""


@contextmanager
def lua_case_server(module: str, cases: dict[str, str]) -> Iterator[str]:
    """nginx serving `/case?case=<name>` for each of `cases` against `sdfleet.<module>`."""
    run_dir = tempfile.mkdtemp(prefix=f"sdfleet-{module}-")
    lua_cases = ",\n".join(
        f'["{name}"] = function()\n{textwrap.indent(textwrap.dedent(body), "    ")}end'
        for name, body in cases.items())
    with open(os.path.join(run_dir, "runner.lua"), "w") as f:
        f.write(RUNNER.format(module=module, cases=lua_cases))
    port = free_port()
    process = start_nginx(module, f"""
    lua_package_path "{ROUTER_DIR}/lua/?.lua;;";
    server {{
        listen 127.0.0.1:{port};
        location = /case {{ content_by_lua_file {run_dir}/runner.lua; }}
    }}""", port, run_dir=run_dir, error_log_level="warn")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.stop()


def run_case(server: str, case: str, timeout: float = 30) -> str:
    """What one case answered: "ok" or its first failed expectation."""
    with urllib.request.urlopen(f"{server}/case?case={case}", timeout=timeout) as r:
        return r.read().decode().strip()
