"""`python -m sdfleet_agent`: the container's command.

Exit codes: 0 after a clean stop (SIGTERM, or one job done / no job in job mode),
1 if in job mode the WebUI never became healthy, 2 if the configuration is invalid.
"""

from __future__ import annotations

import logging
import os
import sys

import boto3
from botocore.config import Config

from .agent import Agent, Shutdown
from .job_metrics import JobMetrics
from .settings import ConfigError, load_settings
from .signals import on_termination


def main() -> int:
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("botocore").setLevel(logging.WARNING)
    try:
        settings = load_settings(os.environ)
    except ConfigError as error:
        print(error, file=sys.stderr)
        return 2
    shutdown = Shutdown()

    def on_signal(name: str) -> None:
        logging.getLogger("sdfleet.agent").info(
            "%s: no new jobs; a running job has %ss to finish", name,
            settings.shutdown_grace_seconds)
        shutdown.request(settings.shutdown_grace_seconds)

    on_termination(on_signal)
    config = Config(retries={"mode": "standard", "max_attempts": 3},
                    read_timeout=max(60, settings.wait_time_seconds + 10))
    session = boto3.session.Session()
    metrics = (JobMetrics(session.client("cloudwatch", config=config), settings.metrics_namespace,
                          settings.runtime) if settings.metrics_namespace else None)
    agent = Agent(settings, session.client("sqs", config=config),
                  session.client("s3", config=config), session.client("sns", config=config),
                  shutdown=shutdown, metrics=metrics)
    return agent.run()


if __name__ == "__main__":
    sys.exit(main())
