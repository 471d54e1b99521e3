"""The sdfleet CrossGuard policy pack (sdfleet_policies/, one module per concern) and its
offline runner (runner.py)."""
