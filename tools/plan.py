"""`make plan`: an offline preview of a stack, with no cloud account and no Pulumi CLI.

Evaluates the real program (__main__.py) with Pulumi's mock engine and the stack's config file
(Pulumi.<stack>.yaml), then prints the resource tree, a count per type and the stack outputs
(values only known after deployment are marked), or with --format json exactly one JSON
document: {"stack", "resources", "outputs", "policies", "policiesEvaluated", "cost"}.

Exit status: 0 fine, 1 the program failed, 2 the stack config is invalid (one line per
problem on stderr), 3 a mandatory policy is violated.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from typing import Any

EXIT_OK, EXIT_PROGRAM_ERROR, EXIT_CONFIG_ERROR, EXIT_POLICY_VIOLATION = 0, 1, 2, 3


def _validate(stack: str, config: dict[str, Any]):
    """Validate before running anything, so a bad config never reaches the engine."""
    from components.config import parse_stack_config

    return parse_stack_config(config, stack=stack)


# RFC 5737's ranges reserved for documentation: nobody's real network.
DOCUMENTATION_RANGES = ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24")
# RFC 2606's names reserved for examples.
EXAMPLE_DOMAINS = ("example.com", "example.net", "example.org")


def _is_example_domain(domain: str) -> bool:
    domain = domain.lower().rstrip(".")
    return any(domain == d or domain.endswith("." + d) for d in EXAMPLE_DOMAINS) or \
        domain.endswith(".example") or domain == "example"


def _documentation_range(cidr: str) -> bool:
    import ipaddress

    net = ipaddress.ip_network(cidr, strict=False)
    return any(net.overlaps(ipaddress.ip_network(doc)) for doc in DOCUMENTATION_RANGES)


def example_value_warnings(stack_config) -> list[str]:
    """One line per value that is still the example's, so a real `pulumi up` would not work
    (a domain nobody owns, members nobody is, an API endpoint nobody can reach)."""
    from components.config import CONFIG_KEY, member_domain

    p = stack_config.platform
    lines = []
    project = stack_config.gcp_project
    if p.cloud == "gcp" and project and (project.startswith("example-") or "-example-" in project):
        lines.append(f"gcp:project {project!r} is the example project id: set your own "
                     "(`pulumi config set gcp:project <id>`)")
    if p.access is not None:
        if _is_example_domain(p.access.domain):
            lines.append(f"{CONFIG_KEY}.access.domain {p.access.domain!r} is an example domain: "
                         "the certificate can never be issued; set a domain you control")
        org = p.access.organization_domain
        if org and _is_example_domain(org):
            lines.append(f"{CONFIG_KEY}.access.organizationDomain {org!r} is an example domain: "
                         "set your organization's")
        for i, member in enumerate(p.access.members):
            if _is_example_domain(member_domain(member)):
                lines.append(f"{CONFIG_KEY}.access.members[{i}] {member!r} is an example member: "
                             "nobody could sign in as it")
    if p.cloud == "gcp":
        for i, network in enumerate(p.cluster.authorized_networks):
            if _documentation_range(network.cidr):
                lines.append(f"{CONFIG_KEY}.cluster.authorizedNetworks[{i}].cidr {network.cidr} is "
                             "a documentation range: `pulumi up` could not reach the cluster's API "
                             "from your machine; set your own egress range")
        if not p.cluster.authorized_networks and not p.cluster.private_endpoint:
            lines.append(f"{CONFIG_KEY}.cluster.authorizedNetworks is empty: only the VPC reaches "
                         "the cluster's API, so run `pulumi up` from inside it or add your range")
    if p.aws is not None:
        for i, cidr in enumerate(p.aws.cluster.public_access_cidrs):
            if _documentation_range(cidr):
                lines.append(f"{CONFIG_KEY}.aws.cluster.publicAccessCidrs[{i}] {cidr} is a documentation "
                             "range: `pulumi up` could not reach the EKS API from your machine")
    return lines


def reliability_notes(stack_config) -> list[str]:
    """What the chosen tiers mean in operation, said once at plan time."""
    cache = stack_config.platform.cache if stack_config.platform.cloud == "gcp" else None
    if cache is None or cache.tier != "BASIC":
        return []
    window = cache.maintenance_window
    return [f"cache.tier BASIC: Memorystore flushes the instance during its weekly maintenance "
            f"({window.day.title()} {window.hour:02d}:00-{(window.hour + 1) % 24:02d}:00 UTC, "
            "cache.maintenanceWindow); sessions and pods are kept (the culler and router rebuild "
            "mappings from the cluster, README \"Reliability\"), people notice nothing."]


def _policies(result, stack_config) -> tuple[list[dict], list[dict]]:
    """(violations, policies evaluated) from the policy pack."""
    from tools import policy_check

    return policy_check.evaluate(result, stack_config)


def _cost(result, stack_config) -> dict:
    try:
        from tools import cost
    except ImportError:
        return {}
    return cost.estimate(result, stack_config)


def render_text(result, violations: list[dict], evaluated: list[dict], cost: dict) -> str:
    lines = [f"Offline preview of stack '{result.stack}' (mock engine: nothing is created)", ""]
    by_parent: dict[str | None, list] = {}
    for r in result.resources:
        by_parent.setdefault(r.parent, []).append(r)
    known = {r.urn for r in result.resources}

    def walk(urn: str | None, depth: int) -> None:
        for r in sorted(by_parent.get(urn, []), key=lambda r: (r.type.startswith("sdfleet:"), r.name)):
            lines.append(f"{'    ' * depth}+ {r.type}  {r.name}")
            walk(r.urn, depth + 1)

    roots = [p for p in by_parent if p is None or p not in known]
    for root in roots:
        walk(root, 0)

    counts = Counter(r.type for r in result.resources)
    lines += ["", f"Resources: {len(result.resources)} to create"]
    width = max(len(t) for t in counts) if counts else 0
    for type_, n in sorted(counts.items()):
        lines.append(f"    {type_:<{width}}  {n}")

    lines += ["", "Outputs:"]
    for key, value in sorted(result.outputs.items()):
        lines.append(f"    {key}: {json.dumps(value) if not isinstance(value, str) else value}")

    if evaluated:
        lines += ["", f"Policies: {len(evaluated)} evaluated, {len(violations)} violation(s)"]
        for v in violations:
            # "urn:pulumi:<stack>::<project>::<parent$>type::name" reads best as "name (type)".
            parts = v["resource"].split("::")
            where = f"{parts[-1]} ({parts[-2].split('$')[-1]})" if len(parts) >= 4 else v["resource"]
            lines.append(f"    [{v['level']}] {v['policy']}: {where}: {v['message']}")
    if cost:
        lines += ["", "Estimated monthly cost (USD):"]
        for line in cost.get("lines", []):
            lines.append(f"    {line['item']:<52} {line['monthlyUsd']:>10.2f}  {line.get('note', '')}".rstrip())
        lines.append(f"    {'total':<52} {cost.get('totalMonthlyUsd', 0):>10.2f}")
        if cost.get("gpuHourUsd") is not None:
            lines.append(f"    one person-hour of GPU: {cost['gpuHourUsd']:.2f}")
        profiles = {k: v for k, v in (cost.get("profileHourUsd") or {}).items()
                    if not k.startswith("fleet ")}
        for profile, usd in sorted(profiles.items()):
            lines.append(f"    one person-hour on profile {profile}: {usd:.2f}")
        for missing in cost.get("missing", []):
            lines.append(f"    not priced: {missing}")
        for usage in cost.get("usageBilled", []):
            lines.append(f"    billed by use, not estimated: {usage}")
        table = cost.get("priceTable") or {}
        if table:
            lines.append(f"    prices: tools/prices.yaml version {table.get('version')}, "
                         f"transcribed {table.get('transcribed')}")
    return "\n".join(lines)


def render_json(result, violations: list[dict], evaluated: list[dict], cost: dict) -> str:
    return json.dumps({
        "stack": result.stack,
        "resources": [{"urn": r.urn, "type": r.type, "name": r.name, "parent": r.parent,
                       "inputs": r.inputs} for r in result.resources],
        "outputs": result.outputs,
        "policies": violations,
        "policiesEvaluated": evaluated,
        "cost": cost,
    }, indent=2, sort_keys=False, default=str)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make plan", description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", default="dev", help="reads Pulumi.<stack>.yaml (default: dev)")
    parser.add_argument("--config-file", help="a stack file to read instead of Pulumi.<stack>.yaml")
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.add_argument("--update", action="store_true",
                        help="resolve every value as `pulumi up` would (default: like preview)")
    args = parser.parse_args(argv)

    from components.config import ConfigError
    from tools.preview import read_stack_config, run_program

    try:
        config = read_stack_config(args.stack, args.config_file)
        stack_config = _validate(args.stack, config)
    except FileNotFoundError as exc:
        print(f"make plan: {exc}", file=sys.stderr)
        return EXIT_CONFIG_ERROR
    except ConfigError as exc:
        print(f"{args.config_file or f'Pulumi.{args.stack}.yaml'}: invalid stack config ({len(exc.lines)} problem(s)):",
              file=sys.stderr)
        for line in exc.lines:
            print(f"  {line}", file=sys.stderr)
        return EXIT_CONFIG_ERROR
    except json.JSONDecodeError as exc:
        print(f"Pulumi.{args.stack}.yaml: sdfleet:platform is not valid JSON: {exc}", file=sys.stderr)
        return EXIT_CONFIG_ERROR
    # Warnings only: an example stack still previews (exit status unchanged).
    for line in example_value_warnings(stack_config):
        print(f"make plan: warning: {line}", file=sys.stderr)
    for line in reliability_notes(stack_config):
        print(f"make plan: note: {line}", file=sys.stderr)

    try:
        result = run_program(config, stack=args.stack, preview=not args.update)
    except Exception as exc:  # noqa: BLE001 (reported, with its type, as a program failure)
        print(f"make plan: the program failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_PROGRAM_ERROR

    violations, evaluated = _policies(result, stack_config)
    cost = _cost(result, stack_config)
    render = render_json if args.format == "json" else render_text
    print(render(result, violations, evaluated, cost))
    if any(v.get("level") == "mandatory" for v in violations):
        print("make plan: mandatory policy violated", file=sys.stderr)
        return EXIT_POLICY_VIOLATION
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
