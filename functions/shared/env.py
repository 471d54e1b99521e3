"""Names of the environment variables the functions read that the stack sets: the functions
(shared/config.py and the modules that read their own) and the stack (components/gcp/functions.py)
both take them from here. Imports nothing, so the Pulumi program loads it by path without the
functions' dependencies. Names only tests set (a static token, fake endpoints) stay where read."""

REDIS_HOST = "REDIS_HOST"                       # allocator, culler: Memorystore's address
REDIS_PORT = "REDIS_PORT"                       # ... and port
REDIS_TLS = "REDIS_TLS"                         # "true": TLS to Redis (always on in the stack)
REDIS_CA_FILE = "REDIS_CA_FILE"                 # the Memorystore CA, mounted from Secret Manager
REDIS_PREFIX = "REDIS_PREFIX"                   # key prefix of every Redis key
REDIS_PASSWORD = "REDIS_PASSWORD"               # the AUTH string (a Secret Manager secret env)
K8S_API_URL = "K8S_API_URL"                     # the cluster's private endpoint
K8S_CA_DATA = "K8S_CA_DATA"                     # its CA (base64 PEM)
AGONES_NAMESPACE = "AGONES_NAMESPACE"           # where the fleets' game servers live
FLEET_NAME = "FLEET_NAME"                       # the default profile's fleet
IAP_AUDIENCE = "IAP_AUDIENCE"                   # allocator: the IAP JWT audience
IDLE_TIMEOUT_SECONDS = "IDLE_TIMEOUT_SECONDS"   # culler: a session ends this long after its last activity
MAX_SESSION_SECONDS = "MAX_SESSION_SECONDS"     # allocator, culler: ... and this long after allocation
ORPHAN_GRACE_SECONDS = "ORPHAN_GRACE_SECONDS"   # culler: an unmapped Allocated server lives this long
GPUS_PER_POD = "GPUS_PER_POD"                   # usage: GPUs one session holds (default profile)
CULL_INVOKER_EMAILS = "CULL_INVOKER_EMAILS"     # culler: who may call it (the scheduler's account)
CULL_INVOKER_AUDIENCE = "CULL_INVOKER_AUDIENCE"  # culler: the OIDC audience of those calls

PROFILES = "SDFLEET_PROFILES"                   # allocator, culler: the profiles as JSON (docs/contracts.md)
GROUPS_API_URL = "SDFLEET_GROUPS_API_URL"       # allocator: Cloud Identity's endpoint (tests: a fake)
GROUP_CACHE_SECONDS = "SDFLEET_GROUP_CACHE_SECONDS"  # allocator: how long a membership answer is kept
BUDGETS = "SDFLEET_BUDGETS"                     # allocator: GPU-hour budgets as JSON (docs/contracts.md)
ADMINS = "SDFLEET_ADMINS"                       # allocator: who may see and end sessions (JSON list of members)
USAGE_TABLE = "SDFLEET_USAGE_TABLE"             # culler: project.dataset.table the usage is exported to
BIGQUERY_URL = "SDFLEET_BIGQUERY_URL"           # culler: BigQuery's endpoint (tests: a fake)
