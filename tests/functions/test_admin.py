"""The administrators' endpoints under a real functions-framework, with real IAP assertions:
only `access.admins` members see sessions or end one, whatever headers a caller adds; an
ended session's person is told once."""

from __future__ import annotations

import json

import pytest

from tests.functions.conftest import base_env, call, iap_headers, start_function

ADMIN = ("accounts.google.com:100000000000000000007", "root@example.com")
ALICE = ("accounts.google.com:100000000000000000001", "alice@example.com")
ALICE_ID = "g-100000000000000000001"
FORGED = {"X-Goog-Authenticated-User-Email": "accounts.google.com:root@example.com",
          "X-Sdfleet-Identity": "g-100000000000000000007", "X-Forwarded-User": "root@example.com",
          "X-Email": "root@example.com"}


@pytest.fixture(scope="module")
def admin_allocator(m_redis, m_iap, m_agones):
    proc = start_function("allocator", "allocate", base_env(
        m_redis, m_iap, m_agones, SDFLEET_ADMINS=json.dumps(["user:root@example.com"])))
    yield proc
    proc.stop()


def test_only_admins_see_and_end_sessions_whatever_headers_are_forged(admin_allocator, clean,
                                                                     m_iap, m_agones):
    m_agones.add_ready("gs-a", "10.8.1.7", 7860)
    alice = m_iap.mint(sub=ALICE[0], email=ALICE[1])
    assert call("POST", admin_allocator.url + "/allocate", iap_headers(alice))[1]["status"] == "ready"
    for path, method, body in (("/admin", "GET", None),
                               ("/admin/end", "POST", json.dumps({"id": ALICE_ID}).encode())):
        status, answer, _ = call(method, admin_allocator.url + path,
                                 {**iap_headers(alice), **FORGED, "Content-Type": "application/json"}, body)
        assert status == 200 and answer["status"] == "refused" and answer["reason"] == "not-an-admin"
    assert m_agones.game_server("gs-a")["status"]["state"] == "Allocated"   # untouched
    assert call("GET", admin_allocator.url + "/admin", FORGED)[0] == 401    # no assertion at all

    root = m_iap.mint(sub=ADMIN[0], email=ADMIN[1])
    status, listing, _ = call("GET", admin_allocator.url + "/admin", iap_headers(root))
    assert status == 200 and listing["status"] == "admin"
    assert [(s["id"], s["email"]) for s in listing["sessions"]] == [(ALICE_ID, "alice@example.com")]
    status, ended, _ = call("POST", admin_allocator.url + "/admin/end",
                            {**iap_headers(root), "Content-Type": "application/json"},
                            json.dumps({"id": ALICE_ID}).encode())
    assert status == 200 and ended == {**ended, "status": "ended", "ended": ALICE_ID}
    assert m_agones.game_server("gs-a") is None
    told = call("POST", admin_allocator.url + "/allocate", iap_headers(alice))[1]
    assert told["status"] == "refused" and told["reason"] == "ended-by-admin"
    m_agones.add_ready("gs-b", "10.8.1.8", 7860)
    again = call("POST", admin_allocator.url + "/allocate", iap_headers(alice))[1]
    assert again["status"] == "ready" and again["gameServer"] == "gs-b"     # told once
