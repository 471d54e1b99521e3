"""The sdfleet CrossGuard policy pack (sdfleet_policies.py) and its offline runner (runner.py)."""
