"""Render the router's nginx.conf from the environment, then optionally exec nginx.

One place turns deployment settings into nginx directives and the Lua settings table, and
refuses values that could inject directives. The same code renders the config for
OpenResty in the image and for Debian's nginx + Lua module in the tests.

    python -m sdfleet_router.render_config --out /tmp/sdfleet-router/nginx.conf \
        [--exec /usr/local/openresty/bin/openresty]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import quote, urlsplit

HERE = Path(__file__).resolve().parent.parent
TIME = re.compile(r"[0-9]+(ms|s|m|h|d)?")
SIZE = re.compile(r"[0-9]+[kKmMgG]?")
HOSTPORT = re.compile(r"[A-Za-z0-9.\-]+:[0-9]{1,5}")
SAFE_PATH = re.compile(r"/[A-Za-z0-9._/\-]*")
SAFE_URL = re.compile(r"https?://[A-Za-z0-9.\-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~/\-]*)?")


@dataclass
class LuaSettings:
    """What the Lua modules read (sdfleet/config.lua). No secrets: those are read at init."""

    redis_host: str = "127.0.0.1"
    redis_port: int = 6379
    redis_tls: bool = False
    redis_server_name: str = ""
    redis_password_file: str = ""
    redis_prefix: str = "sdfleet:"
    redis_connect_timeout_ms: int = 500
    redis_read_timeout_ms: int = 1000
    route_cache_seconds: float = 5.0
    activity_interval_seconds: float = 5.0
    rejected_token_seconds: float = 5.0
    retry_after_seconds: int = 5
    restart_poll_seconds: int = 3   # how often the waiting page asks while a WebUI restarts
    restart_recheck_seconds: float = 20.0  # allocator asked again about a restarting pod
    allocator_bearer: bool = True


@dataclass
class Settings:
    allocator_url: str
    allocator_audience: str = ""
    metadata_url: str = "http://metadata.google.internal"
    listen: str = "8080"
    listen_options: str = ""
    verifier_addr: str = "127.0.0.1:8081"
    worker_processes: str = "auto"
    worker_connections: int = 4096
    client_max_body_size: str = "512m"
    public_scheme: str = "https"
    proxy_read_timeout: str = "3600s"
    proxy_send_timeout: str = "3600s"
    proxy_connect_timeout: str = "5s"
    allocator_timeout: str = "30s"
    upstream_keepalive: int = 64
    token_cache_size: str = "16m"
    redis_ca_file: str = ""
    ca_bundle: str = "/etc/ssl/certs/ca-certificates.crt"
    nginx_modules: list[str] = field(default_factory=list)
    nginx_user: str = ""
    run_dir: str = "/tmp/sdfleet-router"
    lua_dir: str = str(HERE / "lua")
    access_log: str = "off"
    error_log: str = "stderr"
    error_log_level: str = "warn"
    lua: LuaSettings = field(default_factory=LuaSettings)

    @classmethod
    def from_env(cls, env: dict[str, str]) -> "Settings":
        def get(name: str, default: str) -> str:
            value = env.get(name, "")
            return value if value != "" else default

        allocator_url = get("ALLOCATOR_URL", "")
        if not allocator_url:
            raise ValueError("ALLOCATOR_URL is required")
        metadata_url = get("METADATA_URL", "http://metadata.google.internal")
        lua = LuaSettings(
            redis_host=get("REDIS_HOST", "127.0.0.1"),
            redis_port=int(get("REDIS_PORT", "6379")),
            redis_tls=get("REDIS_TLS", "false").lower() == "true",
            redis_server_name=get("REDIS_SERVER_NAME", ""),
            redis_password_file=get("REDIS_PASSWORD_FILE", ""),
            redis_prefix=get("REDIS_PREFIX", "sdfleet:"),
            route_cache_seconds=float(get("ROUTE_CACHE_SECONDS", "5")),
            activity_interval_seconds=float(get("ACTIVITY_INTERVAL_SECONDS", "5")),
            rejected_token_seconds=float(get("REJECTED_TOKEN_SECONDS", "5")),
            retry_after_seconds=int(get("RETRY_AFTER_SECONDS", "5")),
            restart_recheck_seconds=float(get("RESTART_RECHECK_SECONDS", "20")),
            allocator_bearer=metadata_url != "none",
        )
        return cls(
            allocator_url=allocator_url,
            allocator_audience=get("ALLOCATOR_AUDIENCE", allocator_url),
            metadata_url=metadata_url,
            listen=get("ROUTER_LISTEN", "8080"),
            verifier_addr=get("VERIFIER_ADDR", "127.0.0.1:8081"),
            worker_processes=get("NGINX_WORKER_PROCESSES", "auto"),
            worker_connections=int(get("NGINX_WORKER_CONNECTIONS", "4096")),
            client_max_body_size=get("CLIENT_MAX_BODY_SIZE", "512m"),
            public_scheme=get("PUBLIC_SCHEME", "https"),
            proxy_read_timeout=get("PROXY_READ_TIMEOUT", "3600s"),
            proxy_send_timeout=get("PROXY_SEND_TIMEOUT", "3600s"),
            proxy_connect_timeout=get("PROXY_CONNECT_TIMEOUT", "5s"),
            allocator_timeout=get("ALLOCATOR_TIMEOUT", "30s"),
            redis_ca_file=get("REDIS_CA_FILE", ""),
            nginx_modules=get("NGINX_MODULES", "").split(),
            nginx_user=get("NGINX_USER", ""),
            run_dir=get("NGINX_RUN_DIR", "/tmp/sdfleet-router"),
            lua_dir=get("LUA_DIR", str(HERE / "lua")),
            access_log=get("ACCESS_LOG", "off"),
            error_log=get("ERROR_LOG", "stderr"),
            error_log_level=get("ERROR_LOG_LEVEL", "warn"),
            lua=lua,
        )

    def validate(self) -> None:
        """Refuse anything that is not plainly a value, so env cannot inject directives."""
        checks = [
            (SAFE_URL, self.allocator_url, "ALLOCATOR_URL"),
            (TIME, self.proxy_read_timeout, "PROXY_READ_TIMEOUT"),
            (TIME, self.proxy_send_timeout, "PROXY_SEND_TIMEOUT"),
            (TIME, self.proxy_connect_timeout, "PROXY_CONNECT_TIMEOUT"),
            (TIME, self.allocator_timeout, "ALLOCATOR_TIMEOUT"),
            (SIZE, self.client_max_body_size, "CLIENT_MAX_BODY_SIZE"),
            (re.compile(r"https?"), self.public_scheme, "PUBLIC_SCHEME"),
            (SIZE, self.token_cache_size, "token_cache_size"),
            (HOSTPORT, self.verifier_addr, "VERIFIER_ADDR"),
            (re.compile(r"auto|[0-9]+"), self.worker_processes, "NGINX_WORKER_PROCESSES"),
            (re.compile(r"([0-9.]+:)?[0-9]{1,5}"), self.listen, "ROUTER_LISTEN"),
            (SAFE_PATH, self.run_dir, "NGINX_RUN_DIR"),
            (SAFE_PATH, self.lua_dir, "LUA_DIR"),
            (re.compile(r"off|stderr|/[A-Za-z0-9._/\-]*"), self.access_log, "ACCESS_LOG"),
            (re.compile(r"stderr|/[A-Za-z0-9._/\-]*"), self.error_log, "ERROR_LOG"),
            (re.compile(r"debug|info|notice|warn|error|crit"), self.error_log_level,
             "ERROR_LOG_LEVEL"),
            (re.compile(r"[A-Za-z0-9.\-]+"), self.lua.redis_host, "REDIS_HOST"),
            (re.compile(r"[a-z0-9:_\-]*"), self.lua.redis_prefix, "REDIS_PREFIX"),
            (re.compile(r"[A-Za-z0-9.\-]*"), self.lua.redis_server_name, "REDIS_SERVER_NAME"),
        ]
        if self.metadata_url != "none":
            checks.append((SAFE_URL, self.metadata_url, "METADATA_URL"))
        if self.nginx_user:
            checks.append((re.compile(r"[a-z_][a-z0-9_\-]*"), self.nginx_user, "NGINX_USER"))
        for path in [self.redis_ca_file, self.lua.redis_password_file, *self.nginx_modules]:
            if path:
                checks.append((SAFE_PATH, path, "a file path"))
        for pattern, value, name in checks:
            if not pattern.fullmatch(value):
                raise ValueError(f"{name} has an unsupported value: {value!r}")


def size_in_bytes(size: str) -> int:
    """An nginx size (`200m`, `1g`, `512k`, `1024`) in bytes, as nginx reads it (ngx_parse_offset)."""
    unit = size[-1].lower()
    scale = {"k": 1024, "m": 1024 ** 2, "g": 1024 ** 3}
    return int(size[:-1]) * scale[unit] if unit in scale else int(size)


def _allocator_tls(settings: Settings) -> str:
    if urlsplit(settings.allocator_url).scheme != "https":
        return ""
    return (f"proxy_ssl_server_name on;\n            proxy_ssl_verify on;\n"
            f"            proxy_ssl_verify_depth 4;\n"
            f"            proxy_ssl_trusted_certificate {settings.ca_bundle};")


def _metadata_identity_url(settings: Settings) -> str:
    if settings.metadata_url == "none":
        return "http://127.0.0.1:9/unused"  # never requested: the Lua side sends no bearer
    return (settings.metadata_url.rstrip("/")
            + "/computeMetadata/v1/instance/service-accounts/default/identity?audience="
            + quote(settings.allocator_audience, safe="") + "&format=full")


def _fill(template: str, values: dict[str, str]) -> str:
    def substitute(match: re.Match) -> str:
        return values[match.group(1)]
    return re.sub(r"\{\{([a-z_]+)\}\}", substitute, template)


# Identity-like headers a client (or IAP itself) may send never reach Lua or the pod. They
# are cleared by family (a name prefix), not by a list of names, so a variant nobody listed
# (`X-Authenticated-Email`, `X-Remote-Email`, `X-Forwarded-Access-Token`, ...) is cleared too:
# headers-more (`more_clear_input_headers` with a trailing `*`, built into OpenResty) removes
# them from the request at the server level. Each family costs one pass over the request's
# headers (about 130 instructions per request on a minimal request, more with a browser's
# twenty headers), so the families are few and broad: the conventions of generic auth
# proxies, which is what a WebUI or an extension could be configured to trust. The router
# sets X-Forwarded-For (the client address) and X-Forwarded-Proto (PUBLIC_SCHEME: the load
# balancer only serves HTTPS) itself. The person's assertion (`X-Goog-Iap-Jwt-Assertion`) is
# read by the router and blanked in every proxy block, like `Proxy-Authorization`.
FORGEABLE_HEADER_PATTERNS = (
    "X-Sdfleet-*",             # ours: only the router sets them
    "X-Auth*",                 # X-Auth-User, X-Auth-Request-*, X-Authenticated-*, X-Authorization
    "X-Forwarded-*",           # oauth2-proxy: -User, -Email, -Groups, -Access-Token, -Preferred-*
    "X-Remote-*", "Remote-*",  # Apache-style REMOTE_USER, Authelia's Remote-User/-Email/-Groups
    "X-Goog-Authenticated-*",  # IAP's unsigned identity headers (added to every request)
    "X-Iap-*",
    "X-User*", "X-Email*",     # X-User, X-User-Email, X-User-Id, X-Username, X-Email
    "X-Webauth-*",             # Grafana-style auth proxy
)


def render(settings: Settings) -> str:
    settings.validate()
    proxy_template = (HERE / "proxy_to_pod.conf.template").read_text()
    values = {
        "forgeable_header_patterns": " ".join(f'"{p}"' for p in FORGEABLE_HEADER_PATTERNS),
        "proxy_read_timeout": settings.proxy_read_timeout,
        "proxy_send_timeout": settings.proxy_send_timeout,
        "proxy_connect_timeout": settings.proxy_connect_timeout,
        "public_scheme": settings.public_scheme,
    }
    lua_settings = asdict(settings.lua)
    lua_settings["allocator_audience"] = settings.allocator_audience
    lua_settings["max_upload_bytes"] = size_in_bytes(settings.client_max_body_size)
    websocket_activity = ('            header_filter_by_lua_block {\n'
                          '                require("sdfleet.router").header_filter()\n'
                          '            }\n')

    log_activity = ('            log_by_lua_block {\n'
                    '                require("sdfleet.router").log()\n'
                    '            }\n')

    buffered_body = (
        "            # A kept-alive connection the pod closed as a request arrived: nginx itself\n"
        "            # grants one more try on a new connection, for POSTs too (the pod never read\n"
        "            # it; the body is in memory). A fresh connection that fails gets no second\n"
        "            # try here: that is a pod failure, for the failure location.\n"
        "            proxy_next_upstream error timeout non_idempotent;\n")
    streamed_body = (
        "            # Streamed as it arrives (never under /tmp), on a new connection; it cannot\n"
        "            # be sent twice, so there is no retry of any kind.\n"
        "            proxy_request_buffering off;\n"
        "            proxy_next_upstream off;\n")

    def proxy_block(failure_location: str, websockets: bool, records_activity: bool = True,
                    streamed: bool = False) -> str:
        activity = (websocket_activity if websockets else "") + (
            log_activity if records_activity else "")
        return _fill(proxy_template, {
            **values, "failure_location": failure_location, "activity": activity,
            "upstream": "sdfleet_pod_fresh" if streamed else "sdfleet_pod",
            "body_handling": streamed_body if streamed else buffered_body})

    values.update({
        # The hot path never carries an upgrade and never records activity: it only serves
        # identities whose activity was recorded within the interval (activity.due).
        "proxy_to_pod": proxy_block("@sdfleet_pod_failed", websockets=False,
                                    records_activity=False),
        "proxy_to_pod_decided": proxy_block("@sdfleet_pod_failed", websockets=True),
        "proxy_to_pod_retry": proxy_block("@sdfleet_pod_failed_again", websockets=True),
        "proxy_to_pod_streamed": proxy_block("@sdfleet_stream_failed", websockets=False,
                                             streamed=True),
        "load_modules": "\n".join(f"load_module {m};" for m in settings.nginx_modules),
        "user": f"user {settings.nginx_user};" if settings.nginx_user else "",
        "worker_processes": settings.worker_processes,
        "worker_connections": str(settings.worker_connections),
        "run_dir": settings.run_dir,
        "error_log": settings.error_log,
        "error_log_level": settings.error_log_level,
        "access_log": settings.access_log,
        "lua_dir": settings.lua_dir,
        # Redis over TLS is always verified: against its CA (Memorystore's server CA) or,
        # without one, the system bundle
        "lua_ssl": (f"lua_ssl_trusted_certificate {settings.redis_ca_file or settings.ca_bundle};"
                    f"\n    lua_ssl_verify_depth 4;")
                   if settings.lua.redis_tls or settings.redis_ca_file else "",
        "token_cache_size": settings.token_cache_size,
        "settings_json": json.dumps(lua_settings, sort_keys=True),
        "upstream_keepalive": str(settings.upstream_keepalive),
        "verifier_addr": settings.verifier_addr,
        "listen": settings.listen,
        "listen_options": settings.listen_options,
        "client_max_body_size": settings.client_max_body_size,
        "allocator_url": settings.allocator_url,
        "allocator_host": urlsplit(settings.allocator_url).netloc,
        # The allocator's other route, beside /allocate (functions/allocator/main.py).
        "allocator_profiles_url": re.sub(r"/allocate$", "/profiles", settings.allocator_url),
        # /_sdfleet/allocator-admin[/end] -> <function>/admin[/end]
        "allocator_admin_url": re.sub(r"/allocate$", "/admin", settings.allocator_url),
        "allocator_timeout": settings.allocator_timeout,
        "allocator_tls": _allocator_tls(settings),
        "metadata_identity_url": _metadata_identity_url(settings),
    })
    return _fill((HERE / "nginx.conf.template").read_text(), values)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--exec", dest="nginx", default="",
                        help="nginx binary to exec with the rendered config")
    args = parser.parse_args(argv)
    settings = Settings.from_env(dict(os.environ))
    text = render(settings)
    (Path(settings.run_dir) / "logs").mkdir(parents=True, exist_ok=True)  # nginx's default log dir
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    if args.nginx:
        os.execv(args.nginx, [args.nginx, "-p", settings.run_dir, "-c", args.out])
    return 0


if __name__ == "__main__":
    sys.exit(main())
