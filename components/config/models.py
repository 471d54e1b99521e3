"""`PlatformConfig` for the whole `sdfleet:platform` key and `StackConfig` for it with the
provider keys. The sections live by where they apply: components.config.gcp, .common, .aws,
.profiles, .budgets, .images, .monitoring. Structure, types and single-value rules only; the
rules that involve more than one field are in `components.config.rules`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, model_validator

from components.config.aws import AwsConfig
from components.config.budgets import BudgetsConfig, UsageExportConfig
from components.config.common import (
    AccessConfig,
    CullingConfig,
    FleetConfig,
    LimitsConfig,
    ModelsConfig,
    WebuiConfig,
)
from components.config.fields import Section
from components.config.gcp import (
    CacheConfig,
    ClusterConfig,
    GpuPoolConfig,
    NetworkConfig,
    StorageConfig,
    SystemPoolConfig,
)
from components.config.images import ImagesConfig
from components.config.monitoring import MonitoringConfig
from components.config.profiles import ProfileConfig


class PlatformConfig(Section):
    cloud: Literal["gcp", "aws"] = Field(
        description="gcp: the interactive platform on GKE; aws: the EKS batch variant.")
    preflight: bool = Field(
        True,
        description=("Run `make preflight`'s checks (GPU quota, machine types, APIs, Spot role, ...) as "
                     "the first step of `pulumi up`; false skips them."))
    name_prefix: Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{1,14}[a-z0-9]$")] = Field(
        "sdfleet",
        description="Prefix of resource names.")
    # Cost-allocation labels put on every resource that takes labels.
    labels: dict[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,62}$")], Annotated[str, Field(pattern=r"^[a-z0-9_-]{0,63}$")]] = Field(
        default_factory=lambda: {"app": "sdfleet"},
        description="Cost-allocation labels put on every resource that takes labels.")
    network: NetworkConfig = Field(NetworkConfig(), description="GCP: the VPC ranges.")
    cluster: ClusterConfig = Field(ClusterConfig(), description="GCP: the GKE cluster.")
    system_pool: SystemPoolConfig = Field(
        SystemPoolConfig(),
        description="GCP: the always-on node pool for the router, Agones and system pods.")
    gpu_pools: list[GpuPoolConfig] = Field(
        default_factory=list,
        description="GCP: one autoscaled node pool per GPU type (at least one).")
    storage: StorageConfig = Field(
        StorageConfig(),
        description="GCP: the Filestore share for models and people's folders.")
    cache: CacheConfig = Field(
        CacheConfig(),
        description="GCP: the Memorystore Redis for routing and activity.")
    fleet: FleetConfig = Field(
        FleetConfig(),
        description="GCP: the WebUI fleet (warm buffer, limits, pod size).")
    culling: CullingConfig = Field(
        CullingConfig(),
        description="GCP: when idle and long sessions end.")
    access: Optional[AccessConfig] = Field(
        None,
        description="GCP: who may sign in through IAP, and the platform's domain (required).")
    webui: WebuiConfig = Field(
        WebuiConfig(),
        description="The WebUI framework and the router's limits.")
    budgets: Optional[BudgetsConfig] = Field(
        None,
        description="GCP: GPU-hours per person per month, enforced when sessions start and end.")
    usage_export: UsageExportConfig = Field(
        default_factory=UsageExportConfig,
        description="GCP: ended sessions copied to BigQuery every day (a table partitioned by day).")
    profiles: list[ProfileConfig] = Field(
        default_factory=list,
        description=("GCP: what people may start (a framework on a GPU pool) and who may; "
                     "empty: one profile from webui.framework and the fleet section."))
    images: ImagesConfig = Field(
        default_factory=ImagesConfig,
        description="Container images: built by the stack unless given here.")
    models: ModelsConfig = Field(ModelsConfig(), description="The models on the shared store.")
    monitoring: MonitoringConfig = Field(
        default_factory=MonitoringConfig,
        description="GCP: the operators' metrics, dashboard and alerts.")
    limits: LimitsConfig = Field(
        LimitsConfig(),
        description="Caps the policy pack enforces at preview time (budgets: the GPU-hours people may use).")
    aws: Optional[AwsConfig] = Field(
        None,
        description="AWS: the EKS batch variant (required with cloud: aws).")

    @model_validator(mode="before")
    @classmethod
    def _renamed_budget(cls, data: Any) -> Any:
        if isinstance(data, dict) and "budget" in data:
            raise ValueError("budget was renamed limits (the preview-time caps, e.g. "
                             "limits.maxGpuNodes); `budgets` is the GPU-hours people may use")
        return data

    def gpu_pool(self, name: str) -> GpuPoolConfig:
        return next(p for p in self.gpu_pools if p.name == name)

    @property
    def effective_profiles(self):
        """The profiles every component reads (the implicit one when none are configured)."""
        from components.config.profiles import effective_profiles
        return effective_profiles(self)

    @property
    def fleet_pool(self) -> GpuPoolConfig:
        return self.gpu_pool(self.fleet.gpu_pool) if self.fleet.gpu_pool else self.gpu_pools[0]


@dataclass(frozen=True)
class StackSecrets:
    """The stack's secret keys (`SECRET_KEYS`), read once by the loader as Pulumi secrets and
    passed to the components that need them; None where the key is not set."""

    civitai_token: Any = None
    huggingface_token: Any = None
    iap_oauth_client_secret: Any = None


class StackConfig(BaseModel):
    """The validated platform plus the provider keys and secrets it depends on."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    platform: PlatformConfig
    stack: str
    gcp_project: Optional[str] = None
    gcp_region: Optional[str] = None
    aws_region: Optional[str] = None
    secrets: StackSecrets = Field(default_factory=StackSecrets)


# Sections only a GCP interactive platform reads (field names of PlatformConfig).
GCP_SECTIONS = frozenset({"network", "cluster", "system_pool", "gpu_pools", "storage", "cache",
                          "fleet", "culling", "access", "profiles", "budgets", "usage_export",
                          "monitoring"})
