"""sdfleet: load the typed stack config, build the platform it names, export its outputs."""

import pulumi

from components.config import ConfigError, load

try:
    stack = load()
except ConfigError as exc:
    # One line per problem, before any resource is registered.
    raise pulumi.RunError(str(exc)) from None

if stack.platform.preflight:
    from components.preflight import start_with_preflight

    start_with_preflight(f"{stack.platform.name_prefix}-preflight", stack.stack,
                         stack.platform.model_dump(mode="json"))

if stack.platform.cloud == "gcp":
    from components.gcp.platform import GcpPlatform as Platform
else:
    from components.aws.platform import AwsPlatform as Platform

platform = Platform(stack.platform.name_prefix, stack)
for key, value in platform.outputs.items():
    pulumi.export(key, value)
