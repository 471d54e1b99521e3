"""Group membership through the Cloud Identity Groups API, as the allocator's own account:

    GET /v1/groups:lookup?groupKey.id=<group email>              -> {"name": "groups/<id>"}
    GET /v1/<name>/memberships:checkTransitiveMembership
            ?query=member_key_id == '<person email>'              -> {"hasMembership": bool}

Answers True/False, or None when it cannot tell (API off, no permission, unreachable): the
caller then refuses, never admits. Definite answers are kept `cache_seconds` (per instance),
so a person's page polls do not each ask Google.
"""

from __future__ import annotations

import json
import threading
import time
from urllib.parse import quote, urlencode

import urllib3
from shared.agones import TokenSource
from shared.responses import log

DEFAULT_API_URL = "https://cloudidentity.googleapis.com"


class GroupMembership:
    def __init__(self, api_url: str = DEFAULT_API_URL, tokens: TokenSource | None = None,
                 cache_seconds: float = 300.0, clock=time.monotonic, timeout: float = 3.0):
        self.api_url, self.tokens = api_url.rstrip("/"), tokens or TokenSource()
        self.cache_seconds, self.clock = cache_seconds, clock
        self.http = urllib3.PoolManager(num_pools=1, timeout=urllib3.Timeout(total=timeout),
                                        retries=False)
        self._cache: dict[tuple[str, str], tuple[bool, float]] = {}
        self._names: dict[str, str] = {}
        self._lock = threading.Lock()

    def is_member(self, group: str, email: str) -> bool | None:
        key = (group.lower(), email.lower())
        with self._lock:
            cached = self._cache.get(key)
        if cached and cached[1] > self.clock():
            return cached[0]
        answer = self._ask(*key)
        if answer is not None:
            with self._lock:
                self._cache[key] = (answer, self.clock() + self.cache_seconds)
        return answer

    def _get(self, path: str) -> tuple[int, dict]:
        response = self.http.request(
            "GET", self.api_url + path,
            headers={"Authorization": f"Bearer {self.tokens.token()}", "Accept": "application/json"})
        try:
            body = json.loads(response.data or b"{}")
        except ValueError:
            body = {}
        return response.status, body if isinstance(body, dict) else {}

    def _ask(self, group: str, email: str) -> bool | None:
        if "'" in email or "\\" in email:
            return None   # cannot be quoted in the query: refused, never guessed
        try:
            name = self._names.get(group)
            if name is None:
                status, body = self._get("/v1/groups:lookup?" + urlencode({"groupKey.id": group}))
                if status == 404:
                    log("WARNING", "group in a profile's access does not exist", group=group)
                    return False
                if status != 200 or not isinstance(body.get("name"), str):
                    return self._unknown(group, status, body)
                name = self._names[group] = body["name"]
            query = urlencode({"query": f"member_key_id == '{email}'"}, quote_via=quote)
            status, body = self._get(f"/v1/{name}/memberships:checkTransitiveMembership?{query}")
            if status != 200:
                return self._unknown(group, status, body)
            return body.get("hasMembership") is True
        except (urllib3.exceptions.HTTPError, OSError) as e:
            log("ERROR", "group membership cannot be checked", group=group, error=type(e).__name__)
            return None

    @staticmethod
    def _unknown(group: str, status: int, body: dict) -> None:
        message = str((body.get("error") or {}).get("message", ""))[:200]
        hint = {403: "grant the allocator's service account the Groups Reader role in the "
                     "Admin console, and enable cloudidentity.googleapis.com",
                401: "the allocator's credentials were refused"}.get(status, "")
        log("ERROR", "group membership cannot be checked", group=group, status=status,
            api_message=message, fix=hint)
        return None
