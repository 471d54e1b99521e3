"""Start the router the way its image does, on Debian's nginx + Lua module.

The verifier runs as `python -m sdfleet_router.verifier`, and nginx is started through
`python -m sdfleet_router.render_config --out ... --exec nginx`, the same command as the
container, with Debian's module paths instead of OpenResty's built-in Lua.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import textwrap
from pathlib import Path

from testing.helpers.servers import ManagedProcess, free_port

ROOT = Path(__file__).resolve().parents[2]
ROUTER_DIR = ROOT / "images" / "router"
DEBIAN_LUA_MODULES = ["/usr/share/nginx/modules/ndk_http_module.so",
                      "/usr/share/nginx/modules/ngx_http_lua_module.so",
                      "/usr/share/nginx/modules/ngx_http_headers_more_filter_module.so"]


def nginx_binary() -> str:
    return shutil.which("nginx") or "/usr/sbin/nginx"


def start_verifier(audience: str, certs_url: str) -> ManagedProcess:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROUTER_DIR), "VERIFIER_PORT": str(port),
           "IAP_AUDIENCE": audience, "IAP_CERTS_URL": certs_url}
    return ManagedProcess([sys.executable, "-m", "sdfleet_router.verifier"], port, env=env,
                          log_name="verifier").start()


def router_env(*, allocator_url: str, metadata_url: str, redis_port: int, redis_password: str,
               verifier_port: int, port: int, workers: int = 1, **extra: str) -> dict[str, str]:
    run_dir = tempfile.mkdtemp(prefix="sdfleet-router-")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(ROUTER_DIR),
        "ALLOCATOR_URL": allocator_url,
        "METADATA_URL": metadata_url,
        "REDIS_HOST": "127.0.0.1",
        "REDIS_PORT": str(redis_port),
        "REDIS_PASSWORD": redis_password,
        "ROUTER_LISTEN": f"127.0.0.1:{port}",
        "VERIFIER_ADDR": f"127.0.0.1:{verifier_port}",
        "NGINX_MODULES": " ".join(DEBIAN_LUA_MODULES),
        "NGINX_RUN_DIR": run_dir,
        "NGINX_WORKER_PROCESSES": str(workers),
        "ERROR_LOG_LEVEL": "warn",
    }
    if os.geteuid() == 0:
        env["NGINX_USER"] = "root"  # workers must read the per-test run dir (mode 0700)
    env.update(extra)
    return env


def start_router(env: dict[str, str], tmp_mb: int | None = None) -> ManagedProcess:
    """With `tmp_mb`, the router's run dir (its nginx.conf and every temporary file, as under
    /tmp in the router pod) is a tmpfs of that size, private to the router's processes (a
    mount namespace of their own), like the pod's size-limited in-memory emptyDir."""
    port = int(env["ROUTER_LISTEN"].rsplit(":", 1)[1])
    conf = str(Path(env["NGINX_RUN_DIR"]) / "nginx.conf")
    command = [sys.executable, "-m", "sdfleet_router.render_config", "--out", conf,
               "--exec", nginx_binary()]
    if tmp_mb is not None:
        command = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                   f'mount -t tmpfs -o size={tmp_mb}m,mode=0700 sdfleet-router-tmp "$1" '
                   '&& shift && exec "$@"', "sh", env["NGINX_RUN_DIR"], *command]
    return ManagedProcess(command, port, env=env, log_name="router").start()


def start_nginx(name: str, http_block: str, port: int, *, run_dir: str | None = None,
                error_log_level: str = "error") -> ManagedProcess:
    """Debian's nginx with the Lua modules, one worker, and `http_block` inside `http {}`:
    for small purpose-built servers (benchmark proxies and backends, Lua unit cases)."""
    run_dir = run_dir or tempfile.mkdtemp(prefix=f"sdfleet-{name}-")
    user = "user root;" if os.geteuid() == 0 else ""
    modules = "\n".join(f"load_module {m};" for m in DEBIAN_LUA_MODULES)
    conf = textwrap.dedent(f"""\
        {modules}
        {user}
        worker_processes 1;
        daemon off;
        pid {run_dir}/nginx.pid;
        error_log stderr {error_log_level};
        events {{ worker_connections 4096; }}
        http {{
            access_log off;
            client_body_temp_path {run_dir}/b; proxy_temp_path {run_dir}/p;
            fastcgi_temp_path {run_dir}/f; uwsgi_temp_path {run_dir}/u; scgi_temp_path {run_dir}/s;
        """) + http_block + "\n}\n"
    path = os.path.join(run_dir, "nginx.conf")
    with open(path, "w") as f:
        f.write(conf)
    return ManagedProcess([nginx_binary(), "-p", run_dir, "-c", path], port,
                          log_name=name).start()
