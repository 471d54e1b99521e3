"""agent.overhead_ms: the queue agent's own time per job, around a WebUI that answers at once.

A real moto server (SQS, S3, SNS) and the stub WebUI run as child processes on loopback; the
agent runs in this process with its production code path. The queue is filled first, so the
agent goes from job to job. A job's cycle is the time between consecutive finished jobs:
health check, receive, S3 writes, notice, delete, lease supervision.

- agent.overhead_ms (goal <= 50): the cycle minus the time spent waiting for the WebUI's
  answers and minus the HTTP round trips of the AWS API calls themselves (measured between
  botocore's before-send and before-parse events; building, signing and parsing the calls
  stay in). That is the agent's own time per job, independent of how fast the AWS
  endpoint is.
- agent.cycle_with_aws_ms (context, no goal): the cycle minus the WebUI only. Here it is
  dominated by moto_server's ~10-15 ms per call on loopback, 5 calls per job.

Medians over 200 jobs, after 10 warm-up jobs.

    python -m benchmarks.bench_batch
"""

from __future__ import annotations

import statistics
import sys
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "images" / "queue-agent"))
sys.path.insert(0, str(ROOT / "functions" / "submit"))

from sdfleet_agent.agent import Agent, JobReport, Shutdown  # noqa: E402
from sdfleet_agent.settings import load_settings  # noqa: E402
from sdfleet_submit.job import JobRequest  # noqa: E402
from sdfleet_submit.message import job_message  # noqa: E402
from sdfleet_submit.settings import load_settings as submit_settings  # noqa: E402

from benchmarks.report import emit  # noqa: E402
from testing.batch.aws import MotoServer, create_stack  # noqa: E402
from testing.batch.processes import StubWebUi  # noqa: E402

JOBS = 200
WARMUP = 10


def log(*args) -> None:
    print(*args, file=sys.stderr, flush=True)


class AwsRoundTrips:
    """Total time spent inside AWS HTTP round trips, over all instrumented clients."""

    def __init__(self):
        self.total = 0.0
        self.calls = 0
        self._started = threading.local()
        self._lock = threading.Lock()

    def instrument(self, client):
        client.meta.events.register("before-send", self._before_send)
        client.meta.events.register("before-parse", self._before_parse)
        return client

    def _before_send(self, **_):
        self._started.at = time.perf_counter()

    def _before_parse(self, **_):
        elapsed = time.perf_counter() - self._started.at
        with self._lock:
            self.total += elapsed
            self.calls += 1


def fill_queue(stack, count: int) -> None:
    sqs = stack.client("sqs")
    settings = submit_settings({"JOBS_TOPIC_ARN": stack.jobs_topic_arn, "RUNTIMES": "sd-a",
                                "RESULTS_BUCKET": stack.bucket})
    for start in range(0, count, 10):
        entries = []
        for i in range(start, min(count, start + 10)):
            # The submit function's own message builder: the bench cannot drift from the
            # contract the agent reads (it once lacked the `client` field and every job
            # went to the dead-letter queue).
            job = JobRequest.model_validate({"runtime": "sd-a", "prompt": f"bench {i}", "steps": 20},
                                            context={"settings": settings, "client": "bench-client"})
            body, _ = job_message(job, str(uuid.uuid4()), "2026-01-01T00:00:00Z", "bench-client")
            entries.append({"Id": str(i), "MessageBody": body})
        sqs.send_message_batch(QueueUrl=stack.queue_urls["sd-a"], Entries=entries)


def main() -> int:
    moto, webui = MotoServer().start(timeout=60), StubWebUi().start()
    try:
        stack = create_stack(moto, runtimes=("sd-a",))
        fill_queue(stack, WARMUP + JOBS)
        settings = load_settings({
            "QUEUE_URL": stack.queue_urls["sd-a"], "RUNTIME": "sd-a",
            "RESULTS_BUCKET": stack.bucket, "COMPLETION_TOPIC_ARN": stack.completion_topic_arn,
            "DEAD_LETTER_QUEUE_URL": stack.dlq_urls["sd-a"], "WEBUI_URL": webui.url,
            "WAIT_TIME_SECONDS": "1", "VISIBILITY_TIMEOUT_SECONDS": "60",
            "HEARTBEAT_SECONDS": "20"})
        reports: list[tuple[float, float, int, JobReport]] = []
        shutdown = Shutdown()
        aws = AwsRoundTrips()

        def on_report(report: JobReport) -> None:
            reports.append((time.perf_counter(), aws.total, aws.calls, report))
            if len(reports) >= WARMUP + JOBS:
                shutdown.request(0)

        clients = [aws.instrument(moto.client(name)) for name in ("sqs", "s3", "sns")]
        agent = Agent(settings, *clients, shutdown=shutdown, on_report=on_report)
        started = time.perf_counter()
        runner = threading.Thread(target=agent.run, daemon=True)
        runner.start()
        runner.join(timeout=110)
        if runner.is_alive() or len(reports) < WARMUP + JOBS:
            log(f"only {len(reports)} of {WARMUP + JOBS} jobs finished in time")
            return 1
        failed = [r for *_, r in reports if r.outcome.value != "succeeded"]
        if failed:
            log(f"{len(failed)} jobs did not succeed, e.g. {failed[0].reason}")
            return 1
        measured = reports[WARMUP - 1:]
        cycle_ms, own_ms, aws_calls = [], [], []
        for (t0, aws0, calls0, _), (t1, aws1, calls1, report) in zip(measured, measured[1:]):
            cycle_ms.append(1000 * (t1 - t0 - report.webui_seconds))
            own_ms.append(1000 * (t1 - t0 - report.webui_seconds - (aws1 - aws0)))
            aws_calls.append(calls1 - calls0)
        webui_ms = [1000 * r.webui_seconds for *_, r in measured[1:]]
        log(f"{len(own_ms)} jobs in {time.perf_counter() - started:.1f}s; per job: agent's own "
            f"time median {statistics.median(own_ms):.1f} ms (p90 "
            f"{statistics.quantiles(own_ms, n=10)[-1]:.1f}); with AWS round trips median "
            f"{statistics.median(cycle_ms):.1f} ms over {statistics.median(aws_calls):.0f} AWS "
            f"calls; WebUI answers median {statistics.median(webui_ms):.1f} ms")
        emit("agent.overhead_ms", statistics.median(own_ms), "ms", "<=50")
        emit("agent.cycle_with_aws_ms", statistics.median(cycle_ms), "ms", "-")
        return 0
    finally:
        webui.stop()
        moto.stop()


if __name__ == "__main__":
    sys.exit(main())
