"""The `monitoring` section: who is told when an alert fires, and the alerts' thresholds."""

from __future__ import annotations

from typing import Annotated, Optional

from pydantic import Field

from components.config.fields import Section


class MonitoringConfig(Section):
    """GCP: log-based metrics of the functions, a dashboard and alert policies (made by the stack)."""

    enabled: bool = Field(True, description="Make the metrics, the dashboard and the alerts.")
    notify_email: Optional[Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]] = Field(
        None,
        description=("Email address the alerts are sent to (a Cloud Monitoring email channel); unset: "
                     "alerts show in the console only."))
    cold_start_p95_minutes: Annotated[int, Field(ge=1, le=120)] = Field(
        10,
        description="Alert when the p95 of new pods' time to first image is above this, for 30 minutes.")
    no_capacity_minutes: Annotated[int, Field(ge=5, le=240)] = Field(
        15,
        description="Alert when people have been told 'no GPU capacity' for this long.")
