"""The agent's loop: healthy WebUI -> one message -> run it under a lease -> decide.

The job runs in a worker thread while the main thread supervises it: it extends the lease
every HEARTBEAT seconds. After SIGTERM (a Spot interruption leaves about two minutes) it lets
the job finish only if it fits in SHUTDOWN_GRACE seconds: as soon as the WebUI's own estimate
of the time left exceeds what remains of the grace, or when the grace is over, it interrupts
the generation and puts the job back (a new message, so the interruption does not spend one
of its tries) for another agent to take at once, instead of letting it wait out its lease.
What then happens to the message is decided in one place, decision.decide().
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from botocore.exceptions import BotoCoreError, ClientError

from .clients import make_client
from .decision import Action, Outcome, decide
from .errors import PermanentJobError, PoisonMessage, RetryableJobError
from .init_images import InitImageFetcher
from .job_metrics import JobMetrics
from .lease import Lease
from .message import Job, parse_job
from .models import ModelCatalog
from .results import ResultStore, now
from .settings import AgentSettings

log = logging.getLogger("sdfleet.agent")

SUPERVISOR_TICK = 0.25  # how soon a shutdown request is noticed while a job runs
ETA_CHECK_SECONDS = 2.0  # how often the WebUI's estimate is read while shutting down


class Shutdown:
    """Set by SIGTERM/SIGINT; a job in progress gets `grace` more seconds to finish."""

    def __init__(self):
        self.requested = threading.Event()
        self.deadline = float("inf")

    def request(self, grace: float) -> None:
        if not self.requested.is_set():
            self.deadline = time.monotonic() + grace
            self.requested.set()

    def past_deadline(self) -> bool:
        return self.requested.is_set() and time.monotonic() >= self.deadline

    def remaining(self) -> float:
        return max(0.0, self.deadline - time.monotonic())


@dataclass
class JobReport:
    """What happened to one message, with the agent's own time (for logs and benchmarks)."""

    message_id: str
    job_id: str | None
    outcome: Outcome
    action: Action
    reason: str | None
    total_seconds: float
    webui_seconds: float

    @property
    def overhead_seconds(self) -> float:
        return self.total_seconds - self.webui_seconds


class JobRun(threading.Thread):
    """One job in a daemon thread, so an abandoned job cannot keep the process alive."""

    def __init__(self, work):
        super().__init__(daemon=True, name="job")
        self.work = work
        self.outcome, self.reason = Outcome.FAILED_RETRYABLE, "job did not finish"

    def run(self) -> None:
        try:
            self.outcome, self.reason = self.work()
        except Exception as error:  # noqa: BLE001 - any surprise is retried, never fatal
            log.exception("job crashed")
            self.outcome, self.reason = Outcome.FAILED_RETRYABLE, f"{type(error).__name__}: {error}"


def queued_seconds(message: dict, received_monotonic: float) -> float | None:
    """How long the message waited before this receive (SQS's SentTimestamp, ms since epoch)."""
    sent = (message.get("Attributes") or {}).get("SentTimestamp")
    if not sent or not str(sent).isdigit():
        return None
    received_wall = time.time() - (time.monotonic() - received_monotonic)
    return received_wall - int(sent) / 1000


class Agent:
    def __init__(self, settings: AgentSettings, sqs, s3, sns, *, webui=None,
                 shutdown: Shutdown | None = None, on_report=None, metrics: JobMetrics | None = None):
        self.settings = settings
        self.metrics = metrics
        self.sqs = sqs
        self.webui = webui or make_client(settings.webui_framework, settings.webui_url,
                                          settings.health_path, settings.job_timeout_seconds,
                                          settings.health_timeout_seconds)
        self.models = ModelCatalog(settings.models_root)
        self.results = ResultStore(s3, sns, settings.results_bucket, settings.completion_topic_arn)
        self.init_images = InitImageFetcher(s3, settings.results_bucket,
                                            settings.allowed_image_hosts,
                                            settings.max_init_image_bytes)
        self.shutdown = shutdown or Shutdown()
        self.on_report = on_report
        self._healthy: bool | None = None

    # -- the loop --------------------------------------------------------------------------

    def run(self) -> int:
        """Process jobs until shutdown (service mode) or one job (job mode). Exit code."""
        s = self.settings
        log.info("agent started: runtime=%s framework=%s mode=%s queue=%s", s.runtime,
                 s.webui_framework, s.mode, s.queue_url)
        startup_deadline = time.monotonic() + s.startup_timeout_seconds
        empty_polls = 0
        while not self.shutdown.requested.is_set():
            if not self._webui_healthy():
                if s.mode == "job" and time.monotonic() > startup_deadline:
                    log.error("WebUI not healthy after %ss; exiting without taking a job",
                              s.startup_timeout_seconds)
                    return 1
                self.shutdown.requested.wait(s.health_retry_seconds)
                continue
            message = self._receive()
            if message is None:
                empty_polls += 1
                if s.mode == "job" and empty_polls >= s.job_mode_empty_polls:
                    log.info("no job in the queue; exiting")
                    return 0
                continue
            if self.shutdown.requested.is_set():
                # Taken as the node went away: put back untouched, not counted as a try.
                lease = Lease.from_message(self.sqs, s.queue_url, message, 0)
                action = self._apply(Action.REQUEUE, 0, lease, "shutting down")
                log.info("message %s %s: shutting down", message["MessageId"], action.value)
                break
            self.handle(message)
            if s.mode == "job":
                break
        log.info("agent stopped")
        return 0

    def _webui_healthy(self) -> bool:
        healthy = self.webui.healthy()
        if healthy != self._healthy:
            (log.info if healthy else log.warning)(
                "WebUI %s", "healthy: taking jobs" if healthy else "not healthy: not taking jobs")
            self._healthy = healthy
        return healthy

    def _receive(self) -> dict | None:
        try:
            answer = self.sqs.receive_message(
                QueueUrl=self.settings.queue_url, MaxNumberOfMessages=1,
                WaitTimeSeconds=self.settings.wait_time_seconds,
                VisibilityTimeout=self.settings.visibility_timeout,
                MessageSystemAttributeNames=["ApproximateReceiveCount", "SentTimestamp"],
                MessageAttributeNames=["All"])
        except (BotoCoreError, ClientError) as error:
            log.warning("receive failed: %s", error)
            self.shutdown.requested.wait(self.settings.health_retry_seconds)
            return None
        messages = answer.get("Messages") or []
        return messages[0] if messages else None

    # -- one message -----------------------------------------------------------------------

    def handle(self, message: dict) -> JobReport:
        started = time.monotonic()
        webui_time = [0.0]
        lease = Lease.from_message(self.sqs, self.settings.queue_url, message,
                                   self.settings.visibility_timeout)
        job = None
        try:
            job = parse_job(lease.body, self.settings.runtime)
        except PoisonMessage as poison:
            outcome, reason = Outcome.POISON, str(poison)
        else:
            log.info("job %s: attempt %d (%s)", job.job_id, lease.receive_count, job.task)
            # A requeued copy may follow an attempt that finished (its delete lost).
            redelivered = lease.receive_count > 1 or lease.interruptions > 0
            worker = JobRun(lambda: self._process(job, lease.receive_count, webui_time,
                                                  redelivered))
            worker.start()
            outcome, reason = self._supervise(worker, lease)
        s = self.settings
        disposition = decide(outcome, lease.receive_count, backoff_base=s.retry_backoff_base_seconds,
                             backoff_cap=s.retry_backoff_max_seconds,
                             has_dead_letter_queue=s.dead_letter_queue_url is not None,
                             max_receive_count=s.max_receive_count,
                             interruptions=lease.interruptions)
        if job is not None and outcome in (Outcome.FAILED_RETRYABLE, Outcome.ABANDONED):
            reason = self._record_attempt(job, lease.receive_count, disposition.action, reason)
        action = self._apply(disposition.action, disposition.visible_after_seconds, lease, reason)
        report = JobReport(lease.message_id, job.job_id if job else None, outcome, action, reason,
                           time.monotonic() - started, webui_time[0])
        log.info("message %s job %s: %s -> %s%s (%.0f ms, agent %.1f ms)", lease.message_id,
                 report.job_id, outcome.value, action.value,
                 f" after {disposition.visible_after_seconds}s"
                 if action is Action.RELEASE else "", 1000 * report.total_seconds,
                 1000 * report.overhead_seconds)
        if reason and outcome is not Outcome.SUCCEEDED:
            log.warning("message %s job %s: %s", lease.message_id, report.job_id, reason)
        if self.metrics is not None:
            self.metrics.record(outcome, action, report.total_seconds, queued_seconds(message, started))
        if self.on_report:
            self.on_report(report)
        return report

    def _supervise(self, worker: JobRun, lease: Lease) -> tuple[Outcome, str | None]:
        next_beat = time.monotonic() + self.settings.heartbeat_seconds
        next_eta = 0.0
        while True:
            worker.join(timeout=max(0.0, min(SUPERVISOR_TICK, next_beat - time.monotonic())))
            if not worker.is_alive():
                return worker.outcome, worker.reason
            if self.shutdown.past_deadline():
                self.webui.interrupt()
                return Outcome.ABANDONED, "shutdown grace period over before the job finished"
            if self.shutdown.requested.is_set() and time.monotonic() >= next_eta:
                next_eta = time.monotonic() + ETA_CHECK_SECONDS
                eta, remaining = self.webui.eta_seconds(), self.shutdown.remaining()
                if eta is not None and eta > remaining:
                    self.webui.interrupt()
                    return Outcome.ABANDONED, (f"shutting down: the job needs about {eta:.0f}s "
                                               f"more, the grace leaves {remaining:.0f}s")
            if time.monotonic() >= next_beat:
                lease.extend()
                next_beat = time.monotonic() + self.settings.heartbeat_seconds

    def _record_attempt(self, job: Job, attempt: int, action: Action,
                        reason: str | None) -> str | None:
        """What the client sees of an attempt that did not finish: retrying, or (the last try)
        a failed result.json before the message goes to the dead-letter queue."""
        try:
            if action is Action.REQUEUE:
                reason = f"{reason}; requeued (an interruption does not count as a try)"
                self.results.write_status(job, "retrying", attempt, now(), reason)
            elif action is Action.DEAD_LETTER:
                reason = (f"gave up after {attempt} attempts (the job is in the dead-letter "
                          f"queue): {reason}")
                result = self.results.write_failure(job, reason, attempt, now())
                self.results.notify(result)
            else:
                self.results.write_status(job, "retrying", attempt, now(), reason)
        except (BotoCoreError, ClientError) as error:
            log.warning("job %s: attempt not recorded: %s", job.job_id, error)
        return reason

    def _process(self, job: Job, attempt: int, webui_time: list,
                 redelivered: bool) -> tuple[Outcome, str | None]:
        started_at = now()
        try:
            # A redelivered message may belong to a job that already finished (the delete
            # was lost): then only the notice is repeated. A first delivery skips the check.
            finished = self.results.finished_result(job.job_id) if redelivered else None
            if finished:
                log.info("job %s already succeeded; sending its notice again", job.job_id)
                self.results.notify(finished)
                return Outcome.SUCCEEDED, None
            self.results.write_status(job, "running", attempt, started_at)
            init_images = self.init_images.fetch_all(job)
            checkpoint = self._checkpoint_file(job)
            clock = time.monotonic()
            try:
                generation = self.webui.generate(job, init_images, checkpoint)
            finally:
                webui_time[0] += time.monotonic() - clock
            result = self.results.write_success(job, generation.images, generation.model,
                                                generation.info, attempt, started_at)
            self.results.notify(result)
            return Outcome.SUCCEEDED, None
        except PermanentJobError as error:
            result = self.results.write_failure(job, str(error), attempt, started_at)
            self.results.notify(result)
            return Outcome.FAILED_PERMANENTLY, str(error)
        except RetryableJobError as error:
            return Outcome.FAILED_RETRYABLE, str(error)
        except (BotoCoreError, ClientError) as error:
            return Outcome.FAILED_RETRYABLE, f"AWS: {error}"

    def _checkpoint_file(self, job: Job) -> str | None:
        """The store file of the job's model (config name), or the store's default checkpoint
        for a framework that must name one (ComfyUI); A1111 keeps its loaded model."""
        if job.model:
            return self.models.checkpoint_file(job.model)
        if self.settings.webui_framework == "comfyui":
            default = self.models.default_checkpoint()
            return default[1] if default else None
        return None

    def _apply(self, action: Action, visible_after: int, lease: Lease,
               reason: str | None) -> Action:
        """Carry out the decision; a failure here only ever leaves the message in SQS."""
        try:
            if action is Action.DEAD_LETTER:
                try:
                    self.sqs.send_message(
                        QueueUrl=self.settings.dead_letter_queue_url, MessageBody=lease.body,
                        MessageAttributes={
                            "sdfleet-reason": {"DataType": "String",
                                               "StringValue": (reason or "poison")[:1000]},
                            "sdfleet-source-message-id": {"DataType": "String",
                                                          "StringValue": lease.message_id}})
                except (BotoCoreError, ClientError) as error:
                    log.error("message %s: not sent to the dead-letter queue (%s); released for "
                              "the queue's redrive policy", lease.message_id, error)
                    lease.release(0)
                    return Action.RELEASE
                log.error("message %s sent to the dead-letter queue: %s", lease.message_id, reason)
                lease.delete()
            elif action is Action.REQUEUE:
                try:
                    lease.requeue()
                except (BotoCoreError, ClientError) as error:
                    log.error("message %s: not requeued (%s); released instead",
                              lease.message_id, error)
                    lease.release(0)
                    return Action.RELEASE
            elif action is Action.DELETE:
                lease.delete()
            else:
                lease.release(visible_after)
        except (BotoCoreError, ClientError) as error:
            log.error("message %s: %s failed (%s); it stays in the queue", lease.message_id,
                      action.value, error)
        return action
