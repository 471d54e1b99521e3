"""`python -m tools.preflight --stack dev` (`make preflight STACK=dev`): fail in seconds.

Checks, with the deployer's own credentials and read-only calls, what a first `pulumi up`
would otherwise find out after a 30-minute timeout: GPU quota, machine types, APIs, the
organization, the Spot role, Service Quotas, the deployer's reach to the cluster API, the
domain. One line per check; exit 2 if any check fails (as for a config error), else 0.
`pulumi up` runs the same command first (platform.preflight: false skips it).
"""

from __future__ import annotations

import argparse
import sys

from tools.preflight.report import exit_code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.preflight", description=__doc__.splitlines()[0])
    parser.add_argument("--stack", default="dev", help="the stack whose Pulumi.<stack>.yaml to check")
    args = parser.parse_args(argv)

    from components.config import ConfigError
    from tools.plan import _validate
    from tools.preview import read_stack_config

    try:
        stack_config = _validate(args.stack, read_stack_config(args.stack))
    except ConfigError as error:
        print(error, file=sys.stderr)
        return 2
    except FileNotFoundError as error:
        print(f"no stack file for {args.stack!r}: {error}", file=sys.stderr)
        return 2
    try:
        if stack_config.platform.cloud == "gcp":
            from tools.preflight import gcp
            checks = gcp.run(stack_config, gcp.default_api())
        else:
            import boto3

            from tools.preflight import aws
            checks = aws.run(stack_config, boto3.session.Session(region_name=stack_config.aws_region))
    except Exception as error:  # noqa: BLE001 - no credentials at all is one clear line
        print(f"✗ credentials: {type(error).__name__}: {error}\n    fix: "
              + ("gcloud auth application-default login" if stack_config.platform.cloud == "gcp"
                 else "aws configure sso (or set AWS_PROFILE)"))
        return 2
    print(f"Preflight of stack {args.stack!r} ({stack_config.platform.cloud})")
    for check in checks:
        print(check.line())
    code = exit_code(checks)
    print("ready for `pulumi up`" if code == 0 else "fix the ✗ lines before `pulumi up`")
    return code


if __name__ == "__main__":
    sys.exit(main())
