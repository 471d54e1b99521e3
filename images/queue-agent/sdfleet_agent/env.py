"""Names of the environment variables the queue agent reads that the platform sets.

The single source of these names for both sides: images/queue-agent/sdfleet_agent/settings.py
reads them and components/k8s/batch.py sets them (through components/k8s/image_env.py). It imports
nothing, so the Pulumi program can load it without the agent's dependencies."""

QUEUE_URL = "QUEUE_URL"                                     # the runtime's queue
DEAD_LETTER_QUEUE_URL = "DEAD_LETTER_QUEUE_URL"             # its dead-letter queue (a job's last try is recorded failed)
RUNTIME = "RUNTIME"                                         # the runtime's name
RESULTS_BUCKET = "RESULTS_BUCKET"                           # where results and uploads are kept
COMPLETION_TOPIC_ARN = "COMPLETION_TOPIC_ARN"               # where finished jobs are announced
AGENT_MODE = "AGENT_MODE"                                   # service (a Deployment) or job (a KEDA ScaledJob)
WEBUI_FRAMEWORK = "WEBUI_FRAMEWORK"                         # the WebUI's API: automatic1111 or comfyui
WEBUI_URL = "WEBUI_URL"                                     # the WebUI on loopback
MODELS_ROOT = "MODELS_ROOT"                                 # the shared models, read-only
VISIBILITY_TIMEOUT_SECONDS = "VISIBILITY_TIMEOUT_SECONDS"   # the lease a received message gets
HEARTBEAT_SECONDS = "HEARTBEAT_SECONDS"                     # how often the lease is extended
JOB_TIMEOUT_SECONDS = "JOB_TIMEOUT_SECONDS"                 # the longest one job may run
MAX_RECEIVE_COUNT = "MAX_RECEIVE_COUNT"                     # the queue's redrive maxReceiveCount
STARTUP_TIMEOUT_SECONDS = "STARTUP_TIMEOUT_SECONDS"         # how long the WebUI may take to start
SHUTDOWN_GRACE_SECONDS = "SHUTDOWN_GRACE_SECONDS"           # what a Spot interruption leaves for a running job
ALLOWED_IMAGE_HOSTS = "ALLOWED_IMAGE_HOSTS"                 # hosts init images may be fetched from
METRICS_NAMESPACE = "METRICS_NAMESPACE"                     # CloudWatch namespace of the job metrics (unset: none)
