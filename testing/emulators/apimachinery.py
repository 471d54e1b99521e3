"""Kubernetes apimachinery's checks the Agones webhook reuses: label and annotation rules,
and resource quantities."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


# --- apimachinery helpers -----------------------------------------------------------------------

def _validate_labels(labels: dict | None, path: str) -> list[str]:
    """k8s.io/apimachinery metav1validation.ValidateLabels: qualified names and label values."""
    problems = []
    for key, value in (labels or {}).items():
        prefix, _, name = key.rpartition("/")
        if (prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix))) \
                or not name or len(name) > 63 or not _LABEL_NAME.match(name):
            problems.append(f"{path}: Invalid value: {key!r}: name part must be a qualified name")
        if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE.match(value):
            problems.append(f"{path}: Invalid value: {value!r}: a valid label must be 63 "
                            "characters or less, alphanumeric, '-', '_' or '.'")
    return problems


def _validate_annotations(annotations: dict | None, path: str) -> list[str]:
    """apivalidation.ValidateAnnotations: keys are qualified names, total size <= 256 KiB."""
    problems = []
    total = 0
    for key, value in (annotations or {}).items():
        prefix, _, name = key.lower().rpartition("/")
        if (prefix and not _DNS_SUBDOMAIN.match(prefix)) or not _LABEL_NAME.match(name or "-"):
            problems.append(f"{path}: Invalid value: {key!r}: must be a qualified name")
        total += len(key) + len(str(value))
    if total > 256 * 1024:
        problems.append(f"{path}: Too long: must have at most 262144 bytes")
    return problems


_QUANTITY = re.compile(r"^([+-]?[0-9.]+)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?[0-9]+)?$")
_SUFFIX = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
           "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "k": 10**3,
           "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18, None: 1}


def parse_quantity(value) -> Decimal:
    """k8s.io/apimachinery resource.ParseQuantity, to a number (raises ValueError)."""
    if isinstance(value, (int, float)):
        return Decimal(str(value))
    m = _QUANTITY.match(str(value))
    if not m:
        raise ValueError(f"quantities must match the regular expression: {value!r}")
    number, suffix = m.groups()
    try:
        base = Decimal(number)
    except InvalidOperation:
        raise ValueError(f"invalid quantity {value!r}") from None
    if suffix and suffix[0] in "eE" and suffix not in _SUFFIX:
        return base * (Decimal(10) ** int(suffix[1:]))
    return base * Decimal(_SUFFIX[suffix])
