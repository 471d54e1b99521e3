"""The config renderer: settings from the environment, nothing else, and nginx accepts it."""

import os
import re
import subprocess
import sys
import tempfile

import pytest

from testing.router.harness import DEBIAN_LUA_MODULES, ROUTER_DIR, nginx_binary

sys.path.insert(0, str(ROUTER_DIR))
from sdfleet_router.render_config import Settings, render, size_in_bytes  # noqa: E402

BASE = {"ALLOCATOR_URL": "https://allocate-abc123-uc.a.run.app/allocate"}


def test_production_defaults():
    text = render(Settings.from_env(BASE))
    assert "load_module" not in text  # OpenResty has Lua built in
    assert "proxy_read_timeout 3600s;" in text and "client_max_body_size 512m;" in text
    assert "proxy_ssl_verify on;" in text  # the allocator is reached over verified TLS
    assert ("identity?audience=https%3A%2F%2Fallocate-abc123-uc.a.run.app%2Fallocate"
            "&format=full") in text
    assert "REDIS_PASSWORD" not in text.replace("env REDIS_PASSWORD;", "")
    assert "{{" not in text


def test_connections_from_the_load_balancer_outlive_its_600_second_reuse():
    text = render(Settings.from_env(BASE))
    server = text[text.index("    server {"):]
    assert int(re.search(r"\n        keepalive_timeout (\d+)s;", server).group(1)) > 600
    # and the router's own idle connections to a pod close before the WebUI's (uvicorn: 5 s)
    upstream = text[text.index("upstream sdfleet_pod"):text.index("upstream sdfleet_verifier")]
    assert int(re.search(r"keepalive_timeout (\d+)s;", upstream).group(1)) < 5


def test_timeouts_and_limits_come_from_the_environment():
    text = render(Settings.from_env({**BASE, "PROXY_READ_TIMEOUT": "7200s",
                                     "PROXY_CONNECT_TIMEOUT": "3s",
                                     "CLIENT_MAX_BODY_SIZE": "2g"}))
    # the hot path, the deciding path, the retry after a re-allocation and the streamed
    # upload all use them
    assert text.count("proxy_read_timeout 7200s;") == 4
    assert text.count("proxy_connect_timeout 3s;") == 4
    assert "client_max_body_size 2g;" in text


@pytest.mark.parametrize("name, value", [
    ("PROXY_READ_TIMEOUT", "1s; evil on"),
    ("ALLOCATOR_URL", "http://x/;} server {"),
    ("CLIENT_MAX_BODY_SIZE", "1m\n"),
    ("REDIS_HOST", "redis;evil"),
    ("NGINX_MODULES", "/x.so; include /etc/passwd"),
    ("METADATA_URL", "http://metadata internal"),
    ("PUBLIC_SCHEME", "https; evil"),
])
def test_values_that_could_inject_directives_are_refused(name, value):
    with pytest.raises(ValueError):
        render(Settings.from_env({**BASE, name: value}))


def test_allocator_url_is_required():
    with pytest.raises(ValueError):
        Settings.from_env({})


def test_debian_nginx_accepts_the_rendered_config():
    run_dir = tempfile.mkdtemp(prefix="sdfleet-render-")
    env = {**BASE, "NGINX_MODULES": " ".join(DEBIAN_LUA_MODULES), "NGINX_RUN_DIR": run_dir,
           "ALLOCATOR_URL": "http://127.0.0.1:9/allocate", "METADATA_URL": "http://127.0.0.1:9"}
    if os.geteuid() == 0:
        env["NGINX_USER"] = "root"
    conf = os.path.join(run_dir, "nginx.conf")
    with open(conf, "w") as f:
        f.write(render(Settings.from_env(env)))
    check = subprocess.run([nginx_binary(), "-t", "-p", run_dir, "-c", conf],
                           capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stderr


def test_redis_tls_is_always_verified():
    text = render(Settings.from_env({**BASE, "REDIS_TLS": "true"}))
    assert "lua_ssl_trusted_certificate /etc/ssl/certs/ca-certificates.crt;" in text
    assert '"redis_tls": true' in text
    text = render(Settings.from_env({**BASE, "REDIS_TLS": "true",
                                     "REDIS_CA_FILE": "/etc/sdfleet/redis-ca.pem"}))
    assert "lua_ssl_trusted_certificate /etc/sdfleet/redis-ca.pem;" in text


@pytest.mark.parametrize("size, expected", [("200m", 200 * 1024 ** 2), ("1g", 1024 ** 3),
                                            ("512k", 512 * 1024), ("4096", 4096),
                                            ("3M", 3 * 1024 ** 2)])
def test_upload_limit_reaches_lua_in_bytes_as_nginx_reads_it(size, expected):
    # ngx_parse_offset (src/core/ngx_parse.c): k/K = 1024, m/M = 1024^2, g/G = 1024^3
    assert size_in_bytes(size) == expected
    text = render(Settings.from_env({**BASE, "CLIENT_MAX_BODY_SIZE": size}))
    assert f'"max_upload_bytes": {expected}' in text and f"client_max_body_size {size};" in text
