"""The policies the pack serves, in one list: each concern's module defines its own."""

from __future__ import annotations

from . import aws, budget, gke, gpu, labels, memorystore, network, public_access

POLICIES = [
    *public_access.POLICIES,
    *memorystore.POLICIES,
    *gke.POLICIES,
    *gpu.POLICIES,
    *network.POLICIES,
    *aws.POLICIES,
    *labels.POLICIES,
    *budget.POLICIES,
]
