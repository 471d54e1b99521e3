"""The queue agent's CloudWatch metrics: names, unit and dimensions, read by the agent
(job_metrics.py) and by the stack's alarms and dashboard (components/aws/alarms.py). Imports
nothing, so the Pulumi program loads it by path without the agent's dependencies."""

JOBS = "Jobs"                          # one per message handled (Count), by Runtime and Result
JOB_SECONDS = "JobSeconds"             # from receiving a message to its disposition (Seconds), by Runtime
SECONDS_IN_QUEUE = "SecondsInQueue"    # from publishing to receiving (Seconds), by Runtime
RUNTIME = "Runtime"                    # dimension: the runtime's name
RESULT = "Result"                      # dimension: one of RESULTS

SUCCEEDED = "succeeded"                # the job's images are written; the message deleted
FAILED = "failed"                      # the job ended failed (a permanent error, or its last try)
RETRIED = "retried"                    # this try failed; the message comes back for another
REQUEUED = "requeued"                  # put back untried (the node is going away)
POISON = "poison"                      # not a job at all: to the dead-letter queue
RESULTS = (SUCCEEDED, FAILED, RETRIED, REQUEUED, POISON)
