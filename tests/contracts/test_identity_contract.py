"""docs/contracts.md section 1: the router and the functions derive the same identity id.

They are deployed separately (router image, Cloud Functions archive), so each has its own
implementation; if they ever disagreed, a person's mapping written by the allocator would be
invisible to the router. This checks them against each other and against the documented
encoding.
"""

from __future__ import annotations

import base64
import importlib.util
import random
import string
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while being defined
    spec.loader.exec_module(module)
    return module


FUNCTIONS = _load(ROOT / "functions/shared/identity_id.py", "contract_functions_identity")
ROUTER = _load(ROOT / "images/router/sdfleet_router/identity_id.py", "contract_router_identity")


def _documented(sub: str) -> str | None:
    """The encoding as docs/contracts.md states it; None means refused."""
    prefix = "accounts.google.com:"
    digits = sub[len(prefix):]
    if sub.startswith(prefix) and digits.isdigit() and digits.isascii():
        return "g-" + digits if len(digits) <= 61 else None  # a label has at most 63 chars
    raw = sub.encode()
    if not raw or len(raw) > 37:
        return None
    return "b-" + base64.b32hexencode(raw).decode().rstrip("=").lower()


def _either(fn, sub: str) -> str | None:
    try:
        return fn(sub)
    except Exception:  # noqa: BLE001 (each side has its own refusal type)
        return None


def _subjects() -> list[str]:
    rng = random.Random(20261122)
    fixed = ["accounts.google.com:1", "accounts.google.com:100000000000000000001",
             "accounts.google.com:12a", "securetoken.google.com/p:uid", "a@b.c", "é", "",
             "x" * 37, "x" * 38, "accounts.google.com:" + "9" * 43,
             "accounts.google.com:" + "9" * 61, "accounts.google.com:" + "9" * 62]
    return fixed + ["".join(rng.choice(string.printable) for _ in range(rng.randint(1, 40)))
                    for _ in range(1500)]


@pytest.mark.parametrize("sub", _subjects()[:12])
def test_known_subjects(sub):
    assert _either(FUNCTIONS.identity_id, sub) == _either(ROUTER.identity_id, sub)


def test_router_and_functions_agree_with_the_document():
    subjects = _subjects()
    for sub in subjects:
        expected = _documented(sub)
        assert _either(FUNCTIONS.identity_id, sub) == expected, repr(sub)
        assert _either(ROUTER.identity_id, sub) == expected, repr(sub)
    accepted = {_documented(s) for s in subjects} - {None}
    assert len(accepted) == len({s for s in subjects if _documented(s)})  # injective


def test_ids_are_label_safe():
    import re
    label = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    for sub in _subjects():
        value = _either(ROUTER.identity_id, sub)
        if value is not None:
            assert len(value) <= 63 and label.match(value), (sub, value)


def test_router_reads_the_words_the_front_says_a_restart_with():
    """The front's 503 while its WebUI restarts and the router's reading of it are one
    contract (docs/contracts.md section 5): the same header and value on both sides."""
    import re
    rules = (ROOT / "images" / "webui" / "sdfleet_webui" / "frontrules.py").read_text()
    header = re.search(r'^POD_STATUS_HEADER = "([^"]+)"', rules, re.M).group(1)
    value = re.search(r'^POD_STATUS_RESTARTING = "([^"]+)"', rules, re.M).group(1)
    lua = (ROOT / "images" / "router" / "lua" / "sdfleet" / "router.lua").read_text()
    nginx_variable = "upstream_http_" + header.lower().replace("-", "_")
    assert f"ngx.var.{nginx_variable} == POD_STATUS_RESTARTING" in lua
    assert f'local POD_STATUS_RESTARTING = "{value}"' in lua
    from tests.router.webui_stub import FRONT_RESTARTING, FRONT_STATUS_HEADER
    assert (FRONT_STATUS_HEADER, FRONT_RESTARTING) == (header, value)
