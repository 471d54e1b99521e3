"""The whole stack config, typed: one structured key, `sdfleet:platform`.

A package in four parts: `fields` (the section base and single-value rules), `models` (the
sections), `rules` (cross-field rules), `loader` (the stack file and `pulumi.Config`, the only
place that reads it), plus `errors`. `from components.config import X` keeps working for every
name below.

Pulumi stack files hold it as YAML under `sdfleet:platform`; provider keys stay where Pulumi
users expect them (`gcp:project`, `gcp:region`, `aws:region`) and secrets are separate keys read
as Pulumi secrets (`sdfleet:civitaiToken`, `sdfleet:huggingfaceToken`), never fields here.

Validation happens before any resource is registered, and nothing downstream (the
components, tools/cost/) re-checks or sees an unvalidated value:

0. the stack file itself (`read_stack_yaml`, `secret_key_problems`): a key given twice, a
   plaintext value in a secret key (`sdfleet:*Token`, `*Secret`, `*Password`);
1. structure and types (pydantic, `extra="forbid"`, strict: `true` is not 1, "6" is not 6):
   unknown keys, wrong types, out-of-range numbers, values outside an allowed set, and the
   single-value rules (cron, time zone, machine type, image reference, image host, model
   URL without credentials, paths without '..');
2. cross-field rules (`cross_field_problems`, `components.config.rules`): min <= max, accelerator vs machine family,
   non-overlapping CIDRs, zones inside the region, names that refer to other entries,
   sections of the other cloud...

Each problem becomes one line naming the key path (`sdfleet:platform.gpuPools[0].accelerator`),
the bad value and what is allowed (`ConfigError.lines`).

Each component takes its own section model as its args (`GpuPoolConfig` for a GPU node pool,
`CacheConfig` for Memorystore, ...), so a component never reads raw config.
"""

from components.config.aws import (
                                      AWS_MOVED_KEYS,
                                      AWS_VISIBILITY_MARGIN_SECONDS,
                                      SQS_MAX_VISIBILITY_SECONDS,
                                      AwsApiConfig,
                                      AwsClusterConfig,
                                      AwsConfig,
                                      AwsGpuConfig,
                                      AwsJobsConfig,
                                      AwsNetworkConfig,
                                      AwsRuntimeConfig,
)
from components.config.common import (
                                      AccessConfig,
                                      CullingConfig,
                                      FleetConfig,
                                      LimitsConfig,
                                      ModelsConfig,
                                      ModelSpec,
                                      WebuiConfig,
)
from components.config.errors import ConfigError
from components.config.fields import (
                                      ACCELERATOR_FAMILIES,
                                      CONFIG_KEY,
                                      GCE_MACHINE_FAMILIES,
                                      IMAGE_REFERENCE,
                                      SECRET_KEYS,
                                      Section,
                                      member_domain,
)
from components.config.fleet_limits import buffer_policy_problems
from components.config.gcp import (
                                      FILESTORE_MIN_CAPACITY_GB,
                                      AuthorizedNetwork,
                                      CacheConfig,
                                      ClusterConfig,
                                      GpuPoolConfig,
                                      NetworkConfig,
                                      StorageConfig,
                                      SystemPoolConfig,
)
from components.config.images import ImagesConfig
from components.config.loader import (
                                      load,
                                      missing_secret_problems,
                                      parse_platform,
                                      parse_stack_config,
                                      read_stack_yaml,
                                      secret_key_problems,
)
from components.config.models import GCP_SECTIONS, PlatformConfig, StackConfig, StackSecrets
from components.config.profiles import PeakHours
from components.config.rules import cross_field_problems
from components.registries.frameworks import BATCH_FRAMEWORKS

__all__ = [
    "ACCELERATOR_FAMILIES", "AWS_VISIBILITY_MARGIN_SECONDS", "BATCH_FRAMEWORKS", "CONFIG_KEY",
    "FILESTORE_MIN_CAPACITY_GB", "GCE_MACHINE_FAMILIES", "GCP_SECTIONS", "IMAGE_REFERENCE",
    "SECRET_KEYS", "SQS_MAX_VISIBILITY_SECONDS", "AccessConfig", "AuthorizedNetwork", "AWS_MOVED_KEYS",
    "AwsApiConfig", "AwsClusterConfig", "AwsConfig", "AwsGpuConfig", "AwsJobsConfig",
    "AwsNetworkConfig",
    "AwsRuntimeConfig", "CacheConfig", "LimitsConfig", "ClusterConfig", "ConfigError",
    "CullingConfig", "FleetConfig", "GpuPoolConfig", "ImagesConfig", "ModelSpec", "ModelsConfig",
    "NetworkConfig", "PeakHours", "PlatformConfig", "Section", "StackConfig", "StorageConfig",
    "StackSecrets", "SystemPoolConfig", "WebuiConfig", "buffer_policy_problems", "cross_field_problems", "load",
    "member_domain", "missing_secret_problems", "parse_platform", "parse_stack_config", "read_stack_yaml",
    "secret_key_problems",
]
