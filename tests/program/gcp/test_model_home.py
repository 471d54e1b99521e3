"""Where model weights are read from: the share's NFS mount options follow its tier (one
connection for BASIC_HDD, several for the faster tiers, or as configured), every tier's size
rule is Filestore's, and the estimate prices the tier chosen."""

from __future__ import annotations

import pytest

from tools.cost import estimate
from tools.plan import _validate

PV = "kubernetes:core/v1:PersistentVolume"


@pytest.mark.parametrize("storage,options", [
    ({}, ["hard", "nfsvers=3"]),                                          # BASIC_HDD, the default
    ({"tier": "BASIC_SSD", "capacityGb": 2560}, ["hard", "nfsvers=3", "nconnect=4"]),
    ({"tier": "ZONAL", "capacityGb": 1024}, ["hard", "nfsvers=3", "nconnect=4"]),
    ({"tier": "BASIC_SSD", "capacityGb": 2560, "nfsConnections": 8}, ["hard", "nfsvers=3", "nconnect=8"]),
    ({"nfsConnections": 2}, ["hard", "nfsvers=3", "nconnect=2"]),
])
def test_the_share_is_mounted_with_the_connections_its_tier_needs(plan, platform_of, storage, options):
    result = plan(platform_of(lambda p: p.setdefault("storage", {}).update(storage)))
    (volume,) = [r for r in result.of_type(PV) if "nfs" in r.inputs["spec"]]
    assert volume.inputs["spec"]["mountOptions"] == options


def test_a_faster_tier_is_priced_in_the_estimate(plan, platform_of):
    config = platform_of(lambda p: p.setdefault("storage", {}).update(tier="BASIC_SSD", capacityGb=2560))
    lines = estimate(plan(config, preview=True), _validate("dev", config))["lines"]
    (share,) = [line for line in lines if line["item"].startswith("Filestore")]
    assert share["item"] == "Filestore BASIC_SSD, 2560 GiB" and share["monthlyUsd"] == pytest.approx(768.0)
