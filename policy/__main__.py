"""The sdfleet policy pack: `pulumi preview --policy-pack policy`.

Only builds the pack (which starts the analyzer server and blocks); the policies live in
sdfleet_policies/ so that tests and `make plan` (tools/policy_check.py) import them without this.
"""

from pulumi_policy import EnforcementLevel, PolicyPack
from sdfleet_policies import POLICIES

PolicyPack(name="sdfleet", enforcement_level=EnforcementLevel.MANDATORY, policies=POLICIES)
