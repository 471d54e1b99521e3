"""What the plan does not say: usage assumptions, upstream defaults for inputs a resource may
leave out (each cited), and the price table."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from tools.preview import UNKNOWN_MARK  # noqa: F401 (re-exported: what the plan records for unknown values)

PRICES_PATH = Path(__file__).resolve().parent.parent / "prices.yaml"

# --- Usage the plan does not say (each line's note repeats what it assumed) ------------------------
SECONDS_PER_SCHEDULED_RUN = 2.0      # one culler pass over a few hundred identities
MODEL_STORE_GB = 100                 # models on EFS for the AWS batch variant
LAMBDA_SECONDS_PER_JOB = 0.2         # the submit Lambda validates and publishes
SNS_PUBLISHES_PER_JOB = 1            # the submit Lambda publishes each job once

# --- Upstream defaults for inputs a resource may leave out ------------------------------------------
# KEDA ScaledObject/ScaledJob `pollingInterval` default: 30 s (keda.sh/docs/latest/reference/
# scaledobject-spec, "pollingInterval: 30 # Optional. Default: 30 seconds").
KEDA_DEFAULT_POLLING_SECONDS = 30
# aws.eks.NodeGroup `diskSize` default: 20 GiB for Linux node groups (pulumi-aws eks/nodeGroup docs).
EKS_NODE_GROUP_DEFAULT_DISK_GB = 20
# aws.lambda.Function `memorySize` default: 128 MB (pulumi-aws lambda/function docs).
LAMBDA_DEFAULT_MEMORY_MB = 128
# GKE node pools: boot disk pd-balanced, 100 GB unless set (pulumi-gcp container NodePool nodeConfig).
GKE_DEFAULT_DISK_TYPE = "pd-balanced"
GKE_DEFAULT_DISK_GB = 100
# A regional cluster without nodeLocations runs its pools in the region's default zones (3).
GKE_DEFAULT_ZONES_PER_REGION = 3
# Cloud Run functions (gen2): the vCPU a memory size gets when availableCpu is not set
# (cloud.google.com/functions/docs/configuring/memory, "Configure memory and vCPU limits").
FUNCTION_DEFAULT_VCPU_BY_MIB = ((128, 0.083), (256, 0.167), (512, 0.333), (1024, 0.583),
                                (2048, 1.0), (4096, 2.0), (8192, 2.0), (16384, 4.0), (32768, 8.0))
FUNCTION_DEFAULT_MEMORY_MIB = 256

DAYS_PER_MONTH = 365 / 12
WEEKS_PER_MONTH = 365 / 12 / 7
REFERENCE_YEAR = 2025                # any non-leap year: only its calendar is used

GPU = "nvidia.com/gpu"


@lru_cache(maxsize=1)
def price_table(path: str = str(PRICES_PATH)) -> dict:
    """The price table, read once per process."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with open(path, encoding="utf-8") as fh:
        return yaml.load(fh, Loader=loader)
