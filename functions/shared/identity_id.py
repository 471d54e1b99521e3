"""The identity id: a verified subject as a collision-free, label-safe string.

This module only encodes; it verifies nothing. A person's identity is verified from the IAP
assertion in `verifier.py` (and in the router, `images/router/sdfleet_router/verifier.py`),
and only a verified subject is ever passed here.

`identity_id(sub)` turns the verified subject into the id used as a Kubernetes label
value and a Redis key part (docs/contracts.md section 1). It is injective:
  `accounts.google.com:<digits>`      -> `g-<digits>`
  any other subject of <= 37 bytes    -> `b-` + base32hex(utf-8 bytes), lower case, no `=`
  anything else                       -> refused (a hash or truncation could collide)
The two prefixes are disjoint and each branch is reversible. 37 bytes encode to 60
base32 characters, so with the prefix the id stays within the 63-character label limit.
The router encodes the same way on its own (it is deployed apart); tests/contracts checks
that the two agree.
"""

from __future__ import annotations

import base64
import re

GOOGLE_SUBJECT = re.compile(r"accounts\.google\.com:([0-9]{1,61})")  # "g-" + 61 = 63, the label limit
MAX_OTHER_SUBJECT_BYTES = 37
LABEL_VALUE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


class SubjectNotSupported(ValueError):
    """A verified subject that has no collision-free label-safe id (refused, never truncated)."""

    reason = "subject-not-supported"


def identity_id(sub: str) -> str:
    """The injective, label-safe id of a verified subject (module docstring)."""
    m = GOOGLE_SUBJECT.fullmatch(sub)
    if m:
        return f"g-{m.group(1)}"
    raw = sub.encode("utf-8")
    if not raw or len(raw) > MAX_OTHER_SUBJECT_BYTES:
        raise SubjectNotSupported(f"the identity's subject ({len(raw)} bytes) cannot be encoded "
                                  f"as a label: expected 1 to {MAX_OTHER_SUBJECT_BYTES} bytes, or "
                                  f"accounts.google.com:<digits>")
    return "b-" + base64.b32hexencode(raw).decode().rstrip("=").lower()


IDENTITY_ID = re.compile(r"g-[0-9]{1,61}|b-[0-9a-v]{1,61}")


def is_identity_id(id_: str) -> bool:
    """Is this what identity_id produces (and so a safe key part and label value)? Redis
    members that are not (binary garbage, hand edits) are skipped by the culler."""
    return isinstance(id_, str) and IDENTITY_ID.fullmatch(id_) is not None


def subject_of(id_: str) -> str:
    """The inverse of identity_id (the culler rebuilds a lost mapping's subject with it)."""
    if id_.startswith("g-"):
        return f"accounts.google.com:{id_[2:]}"
    if id_.startswith("b-"):
        body = id_[2:].upper()
        return base64.b32hexdecode(body + "=" * (-len(body) % 8)).decode("utf-8")
    raise ValueError(f"not an identity id: {id_!r}")
