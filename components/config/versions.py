"""Versions two layers must agree on: the Agones release and the Kubernetes minors it supports.

The config refuses a cluster version the pinned Agones does not support, and the Agones
component installs the same release; moving the Agones pin without its row here fails at
import (`AGONES_KUBERNETES_MINORS[AGONES_CHART_VERSION]`).
"""

from __future__ import annotations

AGONES_CHART_VERSION = "1.50.0"

# Kubernetes minors each Agones release is tested and supported on (agones site/config.toml
# at the release tag: supported_k8s and the two minors before it; "Kubernetes versions" in
# the release notes).
SUPPORTED_KUBERNETES_BY_AGONES = {
    "1.50.0": ("1.31", "1.32", "1.33"),
}
AGONES_KUBERNETES_MINORS = SUPPORTED_KUBERNETES_BY_AGONES[AGONES_CHART_VERSION]
