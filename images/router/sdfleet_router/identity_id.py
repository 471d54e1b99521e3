"""The identity id of docs/contracts.md section 1, in one place for the router.

The id is a valid Kubernetes label value and a Redis key part, and the encoding is
injective: `g-<digits>` only ever comes from `accounts.google.com:<digits>`, `b-<base32hex>`
only from other subjects, and both halves are reversible. Nothing is truncated or hashed,
because a truncation or a hash could make two people share one pod.
"""

from __future__ import annotations

import base64
import re

GOOGLE_SUBJECT = re.compile(r"accounts\.google\.com:([0-9]+)")
MAX_LABEL_LENGTH = 63
MAX_OTHER_SUBJECT_BYTES = 37


class SubjectNotSupported(ValueError):
    """The subject cannot be encoded without losing information (HTTP 401 upstream)."""

    reason = "subject-not-supported"


def identity_id(subject: str) -> str:
    match = GOOGLE_SUBJECT.fullmatch(subject)
    if match and len(match.group(1)) + 2 <= MAX_LABEL_LENGTH:
        return "g-" + match.group(1)
    if match:
        raise SubjectNotSupported(f"google subject too long ({len(subject)} characters)")
    raw = subject.encode("utf-8")
    if not raw or len(raw) > MAX_OTHER_SUBJECT_BYTES:
        raise SubjectNotSupported(f"subject of {len(raw)} bytes is not supported")
    return "b-" + base64.b32hexencode(raw).decode("ascii").rstrip("=").lower()
