"""The sdfleet CrossGuard policies: invariants every preview of every stack must keep.

One module per concern (public_access, gke, memorystore, gpu, budget, network, aws, labels),
each with its checks and its own `POLICIES`; `pack.py` lists them all. One package feeds both
consumers:
- `policy/__main__.py` builds the real `PolicyPack` from `POLICIES` (`pulumi preview
  --policy-pack policy`);
- `tools/policy_check.py` calls the same policy objects' `validate` over the mock-engine plan of
  `make plan`.

So this package must import nothing from the program (the pack runs in its own virtualenv with
only `policy/requirements.txt`): it reads resource inputs (camelCase, as the engine sends them)
and, for the two policies that need stack settings, its policy config. Its modules import
each other relatively: the CLI imports the package as the top-level `sdfleet_policies` (from
policy/), tests and `make plan` as `policy.sdfleet_policies`.

Stack settings (budget cap, cost-label keys, EKS CIDRs) come from, in order:
1. the policy's config (its `PolicyConfigSchema`): `make plan` passes the validated stack
   config this way, and `pulumi preview --policy-pack-config` can too;
2. the stack's own config, `sdfleet:platform` (the CLI hands policy packs the stack config and
   pulumi_policy loads it into `pulumi.runtime` config, so `pulumi preview --policy-pack policy`
   needs no extra file);
3. the stack config model's defaults (`budget.BUDGET_DEFAULT_MAX_GPU_NODES` equals
   `components.config.LimitsConfig.max_gpu_nodes`; a test keeps them equal).

Unknown values (known only after deployment) raise pulumi_policy's `UnknownValueError` when
read; policies catch it where an unknown value cannot hide a violation (e.g. an IAM member that
is another resource's output is never the literal `allUsers`) and let it through otherwise,
which CrossGuard reports as "can't run policy during preview".
"""

from __future__ import annotations

from .budget import BUDGET_DEFAULT_MAX_GPU_NODES, gpu_node_capacity
from .inputs import UNKNOWN, Unknown, as_json, items, mapping, read
from .pack import POLICIES

__all__ = ["BUDGET_DEFAULT_MAX_GPU_NODES", "POLICIES", "UNKNOWN", "Unknown", "as_json",
           "gpu_node_capacity", "items", "mapping", "read"]
