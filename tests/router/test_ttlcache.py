"""sdfleet/ttlcache.lua, the per-worker caches of the hot path, run inside real nginx + Lua.

Each case is a Lua function in a content_by_lua handler that answers "ok" or the first
failed expectation, so a broken rule shows up as its own message.
"""

from __future__ import annotations

import pytest

from tests.router.lua_cases import lua_case_server, run_case

CASES = {
    "get_returns_what_was_set": """
        local c = ttlcache.new(10)
        c:set("a", "one", 60)
        check(c:get("a") == "one", "value not returned")
        check(c:get("b") == nil, "unknown key returned a value")
    """,
    "expired_entries_are_never_returned": """
        local c = ttlcache.new(10)
        c:set("a", "one", 0.05)
        check(c:get("a") == "one", "fresh value not returned")
        ngx.sleep(0.1)
        ngx.update_time()
        check(c:get("a") == nil, "expired value returned")
    """,
    "set_again_replaces_value_and_expiry": """
        local c = ttlcache.new(10)
        c:set("a", "one", 0.05)
        c:set("a", "two", 60)
        ngx.sleep(0.1)
        ngx.update_time()
        check(c:get("a") == "two", "replaced value lost its new expiry")
        check(c.count == 1, "replacing counted twice: " .. c.count)
    """,
    "delete_removes_and_uncounts": """
        local c = ttlcache.new(10)
        c:set("a", "one", 60)
        c:delete("a")
        c:delete("a")
        check(c:get("a") == nil, "deleted value returned")
        check(c.count == 0, "count after delete: " .. c.count)
    """,
    "full_cache_starts_over_and_stays_bounded": """
        local c = ttlcache.new(3)
        for i = 1, 3 do c:set("k" .. i, i, 60) end
        check(c:get("k1") == 1, "entry lost before the bound")
        c:set("k4", 4, 60)
        check(c.count == 1, "count after starting over: " .. c.count)
        check(c:get("k4") == 4, "newest entry lost")
        check(c:get("k1") == nil, "old entry survived starting over")
        for i = 1, 1000 do c:set("x" .. i, i, 60) end
        check(c.count <= 3, "bound exceeded: " .. c.count)
    """,
}

@pytest.fixture(scope="module")
def nginx_with_ttlcache():
    with lua_case_server("ttlcache", CASES) as server:
        yield server


@pytest.mark.parametrize("case", sorted(CASES))
def test_ttlcache(nginx_with_ttlcache, case):
    assert run_case(nginx_with_ttlcache, case) == "ok"
