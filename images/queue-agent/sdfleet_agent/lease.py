"""A received SQS message and what the agent may do with it: extend, release, delete.

The visibility timeout is the agent's lease on the job. While the job runs the agent keeps
pushing it VISIBILITY_TIMEOUT seconds ahead every HEARTBEAT seconds, so no other agent sees
the message however long the generation takes; if this agent dies, the lease runs out and
another agent takes the job.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

log = logging.getLogger("sdfleet.agent.lease")


@dataclass
class Lease:
    sqs: object
    queue_url: str
    message_id: str
    receipt_handle: str
    body: str
    receive_count: int
    visibility_timeout: int

    @classmethod
    def from_message(cls, sqs, queue_url: str, message: dict, visibility_timeout: int) -> "Lease":
        count = int(message.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
        return cls(sqs, queue_url, message["MessageId"], message["ReceiptHandle"],
                   message.get("Body", ""), count, visibility_timeout)

    def extend(self) -> bool:
        """Push the lease ahead; False (logged) if SQS refused, e.g. the lease was lost."""
        try:
            self.sqs.change_message_visibility(QueueUrl=self.queue_url,
                                               ReceiptHandle=self.receipt_handle,
                                               VisibilityTimeout=self.visibility_timeout)
            return True
        except Exception as error:  # noqa: BLE001 - a failed heartbeat must not kill the job
            log.warning("message %s: visibility not extended: %s", self.message_id, error)
            return False

    def release(self, after_seconds: int) -> None:
        """Make the message visible again after `after_seconds` (0: at once)."""
        self.sqs.change_message_visibility(QueueUrl=self.queue_url,
                                           ReceiptHandle=self.receipt_handle,
                                           VisibilityTimeout=after_seconds)

    def delete(self) -> None:
        self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=self.receipt_handle)
