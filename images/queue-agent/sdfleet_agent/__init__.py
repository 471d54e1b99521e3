"""The queue agent of sdfleet's EKS batch mode: runs beside a WebUI API in one pod.

One job at a time: wait until the WebUI answers its health check, long-poll one message
from this runtime's SQS queue, run it on the WebUI while extending the message's
visibility, write images and `result.json` to S3 under the job id, publish a completion
notice, and only then delete the message. Every other path leaves the message in SQS
(released with back-off, so that after `maxReceiveCount` SQS moves it to the dead-letter
queue) or puts it in the dead-letter queue itself (messages that are not jobs). Nothing is
ever lost: at worst a job runs again and overwrites its own results.

Modules: settings (env), message (body -> Job), webui (HTTP client), init_images,
results (S3 + notice), lease (SQS visibility), decision (the one rule: delete / release /
dead-letter), agent (the loop), __main__ (signals, exit codes).
"""
