"""The identity id (docs/contracts.md section 1) as the router's verifier computes it."""

import re
import sys

import pytest

from testing.router.harness import ROUTER_DIR

sys.path.insert(0, str(ROUTER_DIR))
from sdfleet_router.identity_id import SubjectNotSupported, identity_id  # noqa: E402

LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


def test_google_subjects_keep_their_digits():
    assert identity_id("accounts.google.com:100000000000000000001") == "g-100000000000000000001"


def test_other_subjects_are_base32hex_lower_without_padding():
    # RFC 4648 section 10 test vector: BASE32-HEX("foobar") = "CPNMUOJ1E8======"
    assert identity_id("foobar") == "b-cpnmuoj1e8"


def test_the_reference_systems_collision_is_gone():
    # Replacing "@" and ":" with "." made these two people one; here they stay two.
    ids = {identity_id(s) for s in ["a@b.c", "a.b.c", "a:b.c", "accounts.google.com:1",
                                    "accounts.google.com.1", "g-1", "accounts.google.com:01"]}
    assert len(ids) == 7


@pytest.mark.parametrize("subject", ["accounts.google.com:" + "9" * 61, "x" * 37, "é" * 18,
                                     "accounts.google.com:", "Upper-Case:subject"])
def test_ids_are_kubernetes_label_values(subject):
    ident = identity_id(subject)
    assert len(ident) <= 63 and LABEL.fullmatch(ident), ident


@pytest.mark.parametrize("subject", ["", "x" * 38, "accounts.google.com:" + "9" * 62])
def test_unencodable_subjects_are_refused_not_truncated(subject):
    with pytest.raises(SubjectNotSupported):
        identity_id(subject)


def test_router_and_allocator_compute_the_same_id():
    # The allocator (functions/shared/identity_id.py) writes sdfleet:map:<id>; the router reads
    # it. Both encode the contract independently, so they must agree on every subject.
    import importlib.util

    from testing.router.harness import ROOT
    spec = importlib.util.spec_from_file_location(
        "functions_shared_identity", ROOT / "functions" / "shared" / "identity_id.py")
    functions_identity = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = functions_identity  # its dataclasses look themselves up there
    spec.loader.exec_module(functions_identity)
    subjects = ["accounts.google.com:1", "accounts.google.com:100000000000000000001",
                "accounts.google.com:007", "a@b.c", "foobar", "x" * 37, "é" * 18,
                "accounts.google.com:", "securetoken.google.com/p:uid-1", "Upper",
                "accounts.google.com:" + "9" * 61]
    for subject in subjects:
        assert functions_identity.identity_id(subject) == identity_id(subject), subject
    for subject in ["", "x" * 38, "accounts.google.com:" + "9" * 62]:
        with pytest.raises(Exception):
            functions_identity.identity_id(subject)
