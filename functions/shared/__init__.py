"""Code shared by the allocator and culler Cloud Functions.

Packaged as `shared/` next to each function's `main.py` in its source archive.

  config     environment -> typed settings (ConfigError names the bad variable)
  identity   IAP JWT verification (google-auth) and the injective, label-safe identity id
  state      the Redis schema and every multi-key change as one Lua script
  agones     GameServerAllocation and GameServer calls over the Kubernetes REST API
  responses  JSON answers and structured log lines
"""
