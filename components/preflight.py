"""The preflight (tools/preflight) as the first step of `pulumi up`.

A `command:local:Command` that runs `python -m tools.preflight --stack <stack>` with the
deployer's credentials in the project's directory; every other resource of the stack waits
for it (a stack transformation adds the dependency), so a project without GPU quota or an
account without the Spot role stops in seconds with the check's own line, not after a
30-minute timeout. It runs again when the stack's config changes; `platform.preflight:
false` leaves it out.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import pulumi
from pulumi_command import local

# The interpreter of the project's virtualenv (Pulumi.yaml `virtualenv: .venv`), relative
# to the project's directory where `pulumi up` runs commands: the same in every checkout.
PYTHON = ".venv/bin/python"


def preflight_command(stack: str) -> str:
    return f"{PYTHON} -m tools.preflight --stack {stack}"


@dataclass(frozen=True)
class PreflightArgs:
    stack: str
    config: dict


class Preflight(pulumi.ComponentResource):
    """`sdfleet:Preflight`: the check as a command, run before everything else."""

    def __init__(self, name: str, args: PreflightArgs,
                 opts: pulumi.ResourceOptions | None = None):
        stack, config = args.stack, args.config
        super().__init__("sdfleet:Preflight", name, None, opts)
        digest = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]
        self.check = local.Command(
            f"{name}-check", create=preflight_command(stack), logging="stdoutAndStderr",
            # A changed config checks again; an unchanged one does not re-run on every `up`.
            triggers=[digest], opts=pulumi.ResourceOptions(parent=self))
        self.register_outputs({})


def start_with_preflight(name: str, stack: str, config: dict) -> Preflight:
    """Register the preflight, then make every resource registered after it depend on it."""
    preflight = Preflight(name, PreflightArgs(stack, config))

    def after_preflight(args: pulumi.ResourceTransformationArgs):
        if args.resource is preflight or args.resource is preflight.check:
            return None
        # Every resource, children too: a component's dependencies are not its children's.
        return pulumi.ResourceTransformationResult(
            props=args.props, opts=pulumi.ResourceOptions.merge(
                args.opts, pulumi.ResourceOptions(depends_on=[preflight.check])))

    pulumi.runtime.register_stack_transformation(after_preflight)
    return preflight
