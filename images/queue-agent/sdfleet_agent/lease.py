"""A received SQS message and what the agent may do with it: extend, release, delete.

The visibility timeout is the agent's lease on the job. While the job runs the agent keeps
pushing it VISIBILITY_TIMEOUT seconds ahead every HEARTBEAT seconds, so no other agent sees
the message however long the generation takes; if this agent dies, the lease runs out and
another agent takes the job.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

log = logging.getLogger("sdfleet.agent.lease")

# How many times a job was put back because its node went away (decision.py, requeue).
INTERRUPTIONS_ATTRIBUTE = "sdfleet-interruptions"


def _sendable(attributes: dict) -> dict:
    """A received message's attributes in the form SendMessage takes."""
    keep = ("DataType", "StringValue", "BinaryValue")
    return {name: {k: v for k, v in value.items() if k in keep}
            for name, value in attributes.items()}


@dataclass
class Lease:
    sqs: object
    queue_url: str
    message_id: str
    receipt_handle: str
    body: str
    receive_count: int
    visibility_timeout: int
    attributes: dict = field(default_factory=dict)

    @property
    def interruptions(self) -> int:
        value = self.attributes.get(INTERRUPTIONS_ATTRIBUTE, {}).get("StringValue", "0")
        return int(value) if value.isdigit() else 0

    @classmethod
    def from_message(cls, sqs, queue_url: str, message: dict, visibility_timeout: int) -> "Lease":
        count = int(message.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
        return cls(sqs, queue_url, message["MessageId"], message["ReceiptHandle"],
                   message.get("Body", ""), count, visibility_timeout,
                   dict(message.get("MessageAttributes") or {}))

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

    def requeue(self) -> None:
        """Put the job back as a new message (receive count 1), then delete this one.

        Send first: if the delete then fails the job exists twice, and the agent that takes
        the older copy finds its result (agent._process); never zero times.
        """
        attributes = _sendable(self.attributes)
        attributes[INTERRUPTIONS_ATTRIBUTE] = {"DataType": "Number",
                                               "StringValue": str(self.interruptions + 1)}
        self.sqs.send_message(QueueUrl=self.queue_url, MessageBody=self.body,
                              MessageAttributes=attributes)
        self.delete()

    def delete(self) -> None:
        self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=self.receipt_handle)
