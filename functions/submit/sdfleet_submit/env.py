"""Names of the environment variables the submit Lambda reads: settings.py reads them and the
stack (components/aws/api.py) sets them, both from here. Imports nothing, so the Pulumi program
loads it by path without the Lambda's dependencies."""

JOBS_TOPIC_ARN = "JOBS_TOPIC_ARN"               # where accepted jobs are published
RUNTIMES = "RUNTIMES"                           # comma-separated runtime names the API accepts
RESULTS_BUCKET = "RESULTS_BUCKET"               # where results are written and read
ALLOWED_IMAGE_HOSTS = "ALLOWED_IMAGE_HOSTS"     # hosts init images may be fetched from
MAX_WIDTH = "MAX_WIDTH"                         # largest width a job may ask for
MAX_HEIGHT = "MAX_HEIGHT"                       # ... height
MAX_STEPS = "MAX_STEPS"                         # ... sampling steps
MAX_BATCH_SIZE = "MAX_BATCH_SIZE"               # ... images per batch
MAX_N_ITER = "MAX_N_ITER"                       # ... batches
MAX_PROMPT_CHARS = "MAX_PROMPT_CHARS"           # ... prompt length
MAX_INIT_IMAGES = "MAX_INIT_IMAGES"             # ... init images
MODELS = "MODELS"                               # checkpoint names a job may name
URL_EXPIRY_SECONDS = "URL_EXPIRY_SECONDS"       # lifetime of result links
ATTEMPT_SECONDS = "ATTEMPT_SECONDS"             # when a running attempt counts as dead
MAX_RECEIVE_COUNT = "MAX_RECEIVE_COUNT"         # when the queue gives a job up
