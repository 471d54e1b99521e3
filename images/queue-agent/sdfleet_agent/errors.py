"""How a job can fail; the class decides whether a retry could help (see decision.py)."""


class PoisonMessage(Exception):
    """The SQS message is not a job this agent may run; retrying cannot change that."""


class RetryableJobError(Exception):
    """Transient: the WebUI timed out, crashed or answered 5xx, S3/SNS failed. Retry later."""


class PermanentJobError(Exception):
    """The job itself cannot succeed here (unknown model, refused parameters, missing init
    image). Recorded as a failed result so the client learns why; retrying would not help."""
