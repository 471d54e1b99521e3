"""The sdfleet CrossGuard policy pack (sdfleet_policies/, one module per concern). It imports
nothing else of this repository: the pack is published alone; `make plan` runs it through
tools/policy_check.py."""
