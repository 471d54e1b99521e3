"""Names of the environment variables the router image's programs read that the platform sets.

The single source of these names for both sides: render_config (the router container) and
verifier (the verifier container) read them, and components/k8s/router.py takes them from
here (through components/k8s/image_env.py). It imports nothing, so the Pulumi program can
load it cheaply. tests/contracts/test_image_seams.py checks both sides against the code.
"""

# render_config.Settings.from_env (the router container)
ROUTER_LISTEN = "ROUTER_LISTEN"
REDIS_HOST = "REDIS_HOST"
REDIS_PORT = "REDIS_PORT"
REDIS_TLS = "REDIS_TLS"
REDIS_CA_FILE = "REDIS_CA_FILE"
REDIS_PASSWORD_FILE = "REDIS_PASSWORD_FILE"
REDIS_PREFIX = "REDIS_PREFIX"
ALLOCATOR_URL = "ALLOCATOR_URL"
ALLOCATOR_AUDIENCE = "ALLOCATOR_AUDIENCE"
VERIFIER_ADDR = "VERIFIER_ADDR"
PROXY_READ_TIMEOUT = "PROXY_READ_TIMEOUT"
PROXY_SEND_TIMEOUT = "PROXY_SEND_TIMEOUT"
CLIENT_MAX_BODY_SIZE = "CLIENT_MAX_BODY_SIZE"

# verifier.main (the verifier container)
IAP_AUDIENCE = "IAP_AUDIENCE"
VERIFIER_HOST = "VERIFIER_HOST"
VERIFIER_PORT = "VERIFIER_PORT"
