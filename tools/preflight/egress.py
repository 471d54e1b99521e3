"""The deployer's egress address, and whether an API's authorized ranges admit it."""

from __future__ import annotations

import ipaddress
import os
import urllib.request

# AWS's own echo service: plain text, the caller's public IPv4 address.
ECHO_URL = os.environ.get("SDFLEET_EGRESS_ECHO_URL", "https://checkip.amazonaws.com")


def egress_address(timeout: float = 5.0) -> str | None:
    """This machine's public address as the internet sees it, or None if it cannot be told."""
    try:
        with urllib.request.urlopen(ECHO_URL, timeout=timeout) as answer:  # noqa: S310 (fixed URL)
            text = answer.read(64).decode().strip()
        return str(ipaddress.ip_address(text))
    except (OSError, ValueError):
        return None


def admitted(address: str, ranges: list[str]) -> bool:
    ip = ipaddress.ip_address(address)
    return any(ip in ipaddress.ip_network(cidr, strict=False) for cidr in ranges)
