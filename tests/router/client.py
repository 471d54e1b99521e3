"""Plain HTTP requests to the router, with the headers a browser behind IAP would send."""

from __future__ import annotations

import http.client
import json
from dataclasses import dataclass


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self):
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode(errors="replace")


def request(port: int, path: str = "/", *, token: str | None = None, method: str = "GET",
            headers: list[tuple[str, str]] | None = None, body: bytes | None = None,
            html: bool = False, timeout: float = 10) -> Reply:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        own_host = any(name.lower() == "host" for name, _ in headers or [])
        conn.putrequest(method, path, skip_accept_encoding=True, skip_host=own_host)
        if token is not None:
            conn.putheader("x-goog-iap-jwt-assertion", token)
        conn.putheader("Accept", "text/html,*/*" if html else "application/json")
        for name, value in headers or []:
            conn.putheader(name, value)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        resp = conn.getresponse()
        return Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
    finally:
        conn.close()
