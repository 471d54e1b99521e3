"""sdfleet/pod_cookie.lua, the Cookie header the pod gets, run inside real nginx + Lua.

The filter drops IAP's own cookies (the person's IAP session could otherwise be replayed by
code in the pod) and is cached per worker by the exact raw header. Each case is a Lua
function in a content_by_lua handler that answers "ok" or the first failed expectation.
"""

from __future__ import annotations

import pytest

from tests.router.lua_cases import lua_case_server, run_case

# IAP's cookie names: the session `__Host-GCP_IAP_AUTH_TOKEN_<id>`, `GCP_IAP_UID`,
# `GCP_IAP_XSRF_NONCE_<id>` (what a browser behind IAP sends, as bench_router's browser
# request does).
CASES = {
    "iap_cookies_are_removed_and_the_rest_kept_in_order": """
        local raw = "GCP_IAP_UID=1; __Host-GCP_IAP_AUTH_TOKEN_0A1B=secret; a=1;"
                 .. "  GCP_IAP_XSRF_NONCE_x=2 ;b=two words ; __Host-other=3"
        local got = pod_cookie.for_pod(raw)
        check(got == "a=1; b=two words; __Host-other=3", "filtered: " .. got)
    """,
    "only_iap_cookies_leave_nothing": """
        local got = pod_cookie.for_pod("__Host-GCP_IAP_AUTH_TOKEN_0A1B=secret; GCP_IAP_UID=1")
        check(got == "", "left: " .. got)
        check(pod_cookie.for_pod("GCP_IAP_UID") == "", "a bare IAP name was kept")
    """,
    "names_that_only_look_alike_pass": """
        local raw = "GCP_IA=1; xGCP_IAP=2; __Host-GCP_IA=3; v=GCP_IAP_UID; GCP_IAP_UID=4"
        local got = pod_cookie.for_pod(raw)
        check(got == "GCP_IA=1; xGCP_IAP=2; __Host-GCP_IA=3; v=GCP_IAP_UID", "filtered: " .. got)
    """,
    "header_without_iap_cookies_passes_as_sent_and_is_not_cached": """
        local entries = pod_cookie.cache_size()
        local raw = " sd_theme=dark;gradio=abc "
        check(pod_cookie.for_pod(raw) == raw, "changed: " .. pod_cookie.for_pod(raw))
        check(pod_cookie.cache_size() == entries, "cached a header that needs no filter")
    """,
    "cache_is_keyed_by_the_exact_raw_header": """
        -- Two people, or one person's cookies changing: every raw header that differs by
        -- one byte gets its own filtered value, never one computed for another header.
        local alice = "GCP_IAP_UID=1; session=alice"
        local variants = {
            alice,
            "GCP_IAP_UID=1; session=alicf",          -- one byte
            "GCP_IAP_UID=1; session=ALICE",          -- case
            "GCP_IAP_UID=1; session=alice; x=1",     -- suffix
            "a=0; GCP_IAP_UID=1; session=alice",     -- prefix
            "GCP_IAP_UID=1; session=alice ",         -- trailing blank
            "GCP_IAP_UID=2; session=bob",
        }
        for round = 1, 3 do  -- first computed, then served from the cache
            for _, raw in ipairs(variants) do
                local got, want = pod_cookie.for_pod(raw), pod_cookie.filter(raw)
                check(got == want, "round " .. round .. ": " .. raw .. " -> " .. got
                      .. " instead of " .. want)
            end
        end
        check(pod_cookie.for_pod(alice) == "session=alice", "alice: " .. pod_cookie.for_pod(alice))
        check(pod_cookie.for_pod("GCP_IAP_UID=2; session=bob") == "session=bob", "bob's")
    """,
    "cache_stays_bounded_by_entries": """
        for i = 1, pod_cookie.MAX_ENTRIES * 3 + 7 do
            local raw = "GCP_IAP_UID=1; n=" .. i
            check(pod_cookie.for_pod(raw) == "n=" .. i, "entry " .. i)
            local entries, bytes = pod_cookie.cache_size()
            check(entries <= pod_cookie.MAX_ENTRIES, "entries: " .. entries)
        end
        -- after starting over, the newest entries are still right
        check(pod_cookie.for_pod("GCP_IAP_UID=1; n=5") == "n=5", "after starting over")
    """,
    "cache_stays_bounded_by_bytes": """
        local big = string.rep("v", 7000)
        for i = 1, 1000 do  -- about 14 MB of raw and filtered headers if nothing were dropped
            local raw = "GCP_IAP_UID=1; n" .. i .. "=" .. big
            check(pod_cookie.for_pod(raw) == "n" .. i .. "=" .. big, "entry " .. i)
            local _, bytes = pod_cookie.cache_size()
            check(bytes <= pod_cookie.MAX_BYTES, "bytes: " .. bytes)
        end
        local huge = "GCP_IAP_UID=1; h=" .. string.rep("h", pod_cookie.MAX_BYTES)
        check(pod_cookie.for_pod(huge) == "h=" .. string.rep("h", pod_cookie.MAX_BYTES),
              "huge header")
        local _, bytes = pod_cookie.cache_size()
        check(bytes <= pod_cookie.MAX_BYTES, "a header larger than the bound was cached")
    """,
}

@pytest.fixture(scope="module")
def nginx_with_pod_cookie():
    with lua_case_server("pod_cookie", CASES) as server:
        yield server


@pytest.mark.parametrize("case", sorted(CASES))
def test_pod_cookie(nginx_with_pod_cookie, case):
    assert run_case(nginx_with_pod_cookie, case) == "ok"
