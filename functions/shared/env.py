"""Names of the environment variables the functions read that are new with profiles; the
stack (components/gcp/functions.py) takes them from here. Imports nothing, so the Pulumi
program loads it by path without the functions' dependencies."""

PROFILES = "SDFLEET_PROFILES"                   # allocator, culler: the profiles as JSON (docs/contracts.md)
GROUPS_API_URL = "SDFLEET_GROUPS_API_URL"       # allocator: Cloud Identity's endpoint (tests: a fake)
GROUP_CACHE_SECONDS = "SDFLEET_GROUP_CACHE_SECONDS"  # allocator: how long a membership answer is kept
BUDGETS = "SDFLEET_BUDGETS"                     # allocator: GPU-hour budgets as JSON (docs/contracts.md)
ADMINS = "SDFLEET_ADMINS"                       # allocator: who may see and end sessions (JSON list of members)
USAGE_TABLE = "SDFLEET_USAGE_TABLE"             # culler: project.dataset.table the usage is exported to
BIGQUERY_URL = "SDFLEET_BIGQUERY_URL"           # culler: BigQuery's endpoint (tests: a fake)
