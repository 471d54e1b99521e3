"""Where a job's objects live in the stack's bucket: the contract between the submit function
(functions/submit/sdfleet_submit/layout.py, an identical copy: the Lambda archive and this
image cannot share a package; tests/batch/test_layout.py keeps the two the same) and the agent.

    jobs/<client>/<jobId>.json        the submission record (submit): who submitted what, when
    uploads/<client>/<name>           a client's init images (presigned upload, submit)
    results/<jobId>/status.json       the current attempt (agent): running / retrying
    results/<jobId>/image-<n>.png     the images (agent)
    results/<jobId>/result.json       written last (agent): succeeded or failed, final

A client is the IAM principal that signed the request (SigV4; the submit function's
`client_id` of `requestContext.identity.userArn`): a client sees only jobs recorded under its
own prefix, and names init images only under its own uploads.
"""

RESULTS_PREFIX = "results/"
JOBS_PREFIX = "jobs/"
UPLOADS_PREFIX = "uploads/"


def job_prefix(job_id: str) -> str:
    return f"{RESULTS_PREFIX}{job_id}/"


def image_key(job_id: str, index: int) -> str:
    return f"{job_prefix(job_id)}image-{index}.png"


def result_key(job_id: str) -> str:
    return f"{job_prefix(job_id)}result.json"


def status_key(job_id: str) -> str:
    return f"{job_prefix(job_id)}status.json"


def record_key(client: str, job_id: str) -> str:
    return f"{JOBS_PREFIX}{client}/{job_id}.json"


def upload_prefix(client: str) -> str:
    return f"{UPLOADS_PREFIX}{client}/"
