"""Names of the environment variables this image's programs read that the platform sets.

The single source of these names for both sides: the programs read them (supervisor,
usersync, fetch, probe), and the manifests that start this image (components/k8s/fleet.py,
through components/k8s/image_env.py) take them from here. It imports nothing, so the Pulumi
program can load it without the image's dependencies. tests/contracts/test_image_seams.py
checks that every name here is read by the image's code and every name a manifest sets is.
"""

FRAMEWORK = "SDFLEET_FRAMEWORK"              # supervisor: which framework to run
MODELS_ROOT = "SDFLEET_MODELS_ROOT"          # supervisor, fetch: the shared models (read-only in pods)
SCRATCH = "SDFLEET_SCRATCH"                  # supervisor, usersync: the pod's own scratch space
USERS_ROOT = "SDFLEET_USERS_ROOT"            # usersync: people's folders on the shared store
WEBUI_PORT = "SDFLEET_WEBUI_PORT"            # supervisor, probe: the framework's port
SUPERVISOR_PORT = "SDFLEET_SUPERVISOR_PORT"  # supervisor, probe: the supervisor's loopback API
MODELS_JSON = "SDFLEET_MODELS_JSON"          # fetch: the model list as JSON text
LISTEN_HOST = "SDFLEET_LISTEN_HOST"          # supervisor: the framework's listen address (loopback in pods)
START_TIMEOUT_SECONDS = "SDFLEET_START_TIMEOUT_SECONDS"  # supervisor: a first start's whole budget
FRONT_PORT = "SDFLEET_FRONT_PORT"            # trusted front: the game server port it owns
FRONT_UPSTREAM = "SDFLEET_FRONT_UPSTREAM"    # trusted front: the framework on loopback
IDLE_SECONDS = "SDFLEET_IDLE_SECONDS"        # trusted front: a session ends this long after its last activity
MAX_SESSION_SECONDS = "SDFLEET_MAX_SESSION_SECONDS"  # trusted front: ... and this long after allocation
WARN_SECONDS = "SDFLEET_WARN_SECONDS"        # trusted front: the page warns this long before the end
GPU_BUSY_PERCENT = "SDFLEET_GPU_BUSY_PERCENT"  # supervisor: GPU utilisation that counts as activity
MODELS_ONLY = "SDFLEET_MODELS_ONLY"          # supervisor: the model names a profile offers (comma-separated)
STOP_GRACE_SECONDS = "SDFLEET_STOP_GRACE_SECONDS"  # supervisor: how long a stopping WebUI gets before SIGKILL
AGONES = "SDFLEET_AGONES"                    # supervisor: talk to the Agones SDK (auto, true, false)
