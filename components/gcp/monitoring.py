"""What operators see: log-based metrics, a dashboard and alert policies.

The metrics are defined once per program, in functions/shared/metrics.py (the functions' log
lines) and images/webui/sdfleet_webui/metrics.py (the WebUI supervisor's events): the line each
is made of, its fields, labels and buckets. Here each becomes a `gcp.logging.Metric` on this
stack's functions' logs or its WebUI containers' logs, and the dashboard and the alerts read them (`dashboard_definition`, `alert_definitions`)
together with metrics GKE and Filestore publish themselves (`BUILT_IN_METRICS`). A test checks
that every query names a metric this stack defines or one of those.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from components.config.monitoring import MonitoringConfig
from components.env_names import load_import_free

USER_METRIC = "logging.googleapis.com/user/"
# Metrics the platform's services publish themselves (Cloud Monitoring's metrics list:
# GKE system metrics, Filestore).
GPU_DUTY_CYCLE = "kubernetes.io/container/accelerator/duty_cycle"
FILESTORE_USED_PERCENT = "file.googleapis.com/nfs/server/used_bytes_percent"
BUILT_IN_METRICS = (GPU_DUTY_CYCLE, FILESTORE_USED_PERCENT)


def function_metrics() -> dict:
    """functions/shared/metrics.py's METRICS (read from the functions' log lines)."""
    return load_import_free("functions/shared/metrics.py").METRICS


def pod_metrics() -> dict:
    """images/webui/sdfleet_webui/metrics.py's METRICS (read from the WebUI containers' logs)."""
    return load_import_free("images/webui/sdfleet_webui/metrics.py").METRICS


def all_metrics() -> dict:
    return {**function_metrics(), **pod_metrics()}


def metric_name(prefix: str, name: str) -> str:
    """This stack's name of a registry metric (two stacks in one project do not collide)."""
    return prefix.replace("-", "_") + name[len("sdfleet"):]


def log_filter(prefix: str, message: str) -> str:
    """The log lines of this stack's functions (gen2 functions log as Cloud Run revisions)."""
    return (f'resource.type="cloud_run_revision" AND resource.labels.service_name=~"^{prefix}-fn-" '
            f'AND jsonPayload.message="{message}"')


def pod_log_filter(namespace: str, event: str) -> str:
    """The supervisor's events in this stack's WebUI containers (GKE parses a JSON line into
    jsonPayload)."""
    return (f'resource.type="k8s_container" AND resource.labels.namespace_name="{namespace}" '
            f'AND resource.labels.container_name="webui" AND jsonPayload.event="{event}"')


def _series(metric_type: str, extra: str = "", aligner: str = "ALIGN_RATE",
            reducer: str = "REDUCE_SUM", group_by: tuple[str, ...] = ()) -> dict:
    return {"timeSeriesFilter": {
        "filter": f'metric.type="{metric_type}"' + (f" AND {extra}" if extra else ""),
        "aggregation": {"alignmentPeriod": "60s", "perSeriesAligner": aligner,
                        "crossSeriesReducer": reducer, "groupByFields": list(group_by)}}}


def _tile(title: str, query: dict, x: int, y: int, kind: str = "LINE") -> dict:
    return {"xPos": x, "yPos": y, "width": 6, "height": 4, "widget": {
        "title": title, "xyChart": {"dataSets": [{"timeSeriesQuery": query, "plotType": kind}]}}}


def dashboard_definition(prefix: str) -> dict:
    """The dashboard (Cloud Monitoring's dashboard JSON), one definition for every consumer."""
    user = {name: USER_METRIC + metric_name(prefix, name) for name in all_metrics()}
    tiles = [
        ("Allocations by outcome", _series(user["sdfleet_allocator_answers"],
                                           group_by=("metric.label.outcome",))),
        ("Allocator latency p95 (ms)", _series(user["sdfleet_allocator_latency_ms"],
                                               aligner="ALIGN_DELTA", reducer="REDUCE_PERCENTILE_95")),
        ("New pod to first image p50 (s), by profile",
         _series(user["sdfleet_cold_start_seconds"], aligner="ALIGN_DELTA",
                 reducer="REDUCE_PERCENTILE_50", group_by=("metric.label.profile",))),
        ("New pod to first image p95 (s), by profile",
         _series(user["sdfleet_cold_start_seconds"], aligner="ALIGN_DELTA",
                 reducer="REDUCE_PERCENTILE_95", group_by=("metric.label.profile",))),
        ("Sessions ended by reason", _series(user["sdfleet_sessions_ended"],
                                             group_by=("metric.label.reason",))),
        ("GPU utilisation of WebUI pods (%)", _series(
            GPU_DUTY_CYCLE, 'resource.label.container_name="webui"', aligner="ALIGN_MEAN",
            reducer="REDUCE_MEAN")),
        ("Culler pass p95 (ms)", _series(user["sdfleet_culler_pass_ms"], aligner="ALIGN_DELTA",
                                         reducer="REDUCE_PERCENTILE_95")),
        ("Model and people's store used (%)", _series(FILESTORE_USED_PERCENT, aligner="ALIGN_MEAN",
                                                      reducer="REDUCE_MAX")),
        ("WebUI restarts in people's pods, by framework",
         _series(user["sdfleet_webui_restarts"], group_by=("metric.label.framework",))),
        ("WebUI start to first image p95 (s), by framework",
         _series(user["sdfleet_webui_seconds_to_ready"], aligner="ALIGN_DELTA",
                 reducer="REDUCE_PERCENTILE_95", group_by=("metric.label.framework",))),
    ]
    return {"displayName": f"sdfleet ({prefix})", "mosaicLayout": {"columns": 12, "tiles": [
        _tile(title, query, 6 * (i % 2), 4 * (i // 2)) for i, (title, query) in enumerate(tiles)]}}


def alert_definitions(prefix: str, config: MonitoringConfig) -> list[dict]:
    """The alert policies: name, condition (threshold or absence) and what to do."""
    user = {name: USER_METRIC + metric_name(prefix, name) for name in all_metrics()}
    return [
        {"name": "allocations-failing", "title": "sdfleet: allocations fail",
         "filter": f'metric.type="{user["sdfleet_allocator_answers"]}" AND metric.label.outcome="unavailable"',
         "aligner": "ALIGN_RATE", "threshold": 0.0, "duration": "300s",
         "doc": ("People are told their workspace cannot be assigned. Read the allocator's log "
                 "(`redis unavailable`, `kubernetes unavailable`, `kubernetes refused the request`): "
                 "Memorystore in maintenance, the cluster's API unreachable from the VPC connector, "
                 "or Agones refusing allocations.")},
        {"name": "no-gpu-capacity", "title": "sdfleet: no GPU capacity",
         "filter": f'metric.type="{user["sdfleet_allocator_answers"]}" AND metric.label.outcome="no-capacity"',
         "aligner": "ALIGN_RATE", "threshold": 0.0, "duration": f"{config.no_capacity_minutes * 60}s",
         "doc": ("People wait for a GPU that the zone cannot give. Turn on the pool's "
                 "`onDemandFallback`, add zones to the pool, or point people at another profile; "
                 "the pending pods' FailedScaleUp events say which.")},
        {"name": "slow-cold-starts", "title": "sdfleet: new workspaces start slowly",
         "filter": f'metric.type="{user["sdfleet_cold_start_seconds"]}"',
         "aligner": "ALIGN_PERCENTILE_95", "threshold": config.cold_start_p95_minutes * 60.0,
         "duration": "1800s",
         "doc": ("The p95 of a new pod's time to its first image is high. The admin view's cold-start "
                 "table says which phase: waiting for a node (capacity, Spot), pulling the image "
                 "(turn on images.preloadDisk), starting the WebUI or loading the model (the store's "
                 "tier, storage.nfsConnections).")},
        {"name": "culler-not-running", "title": "sdfleet: the culler is not running",
         "filter": f'metric.type="{user["sdfleet_culler_pass_ms"]}"', "absent": "600s",
         "doc": ("No culler pass for 10 minutes: idle GPUs are not being freed. Check the Cloud "
                 "Scheduler job's last runs and the culler function's log (refused calls, "
                 "`culler pass aborted`).")},
        {"name": "webui-failing", "title": "sdfleet: WebUIs fail in people's pods",
         "filter": f'metric.type="{user["sdfleet_webui_gave_up"]}"',
         "aligner": "ALIGN_RATE", "threshold": 0.0, "duration": "0s",
         "doc": ("A pod's WebUI failed so often that its supervisor stopped restarting it; the "
                 "person sees an error page until the pod is replaced. Read the pod's `webui` "
                 "container log (`webui-failed` lines carry the reason and the WebUI's last error "
                 "line): a model that does not load, a GPU out of memory, a broken image.")},
        {"name": "store-nearly-full", "title": "sdfleet: the model store is nearly full",
         "filter": f'metric.type="{FILESTORE_USED_PERCENT}"', "aligner": "ALIGN_MEAN",
         "threshold": 85.0, "duration": "900s",
         "doc": ("The Filestore share is over 85 % full: new outputs and model syncs will fail. "
                 "Raise storage.capacityGb (Filestore grows in place) or remove unused models.")},
    ]


@dataclass(frozen=True)
class OperatorsViewArgs:
    config: MonitoringConfig
    project: str
    prefix: str
    webui_namespace: str      # where the WebUI pods run (their containers' logs)


class OperatorsView(pulumi.ComponentResource):
    """`sdfleet:gcp:OperatorsView`: log-based metrics, a dashboard, alert policies, a channel."""

    def __init__(self, name: str, args: OperatorsViewArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("sdfleet:gcp:OperatorsView", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        project, prefix = args.project, args.prefix
        self.metrics = {}
        sources = [(spec, log_filter(prefix, spec["message"])) for spec in function_metrics().values()]
        sources += [(spec, pod_log_filter(args.webui_namespace, spec["event"]))
                    for spec in pod_metrics().values()]
        for key, (spec, log_lines) in zip([*function_metrics(), *pod_metrics()], sources):
            counter = spec["kind"] == "counter"
            buckets = None
            if not counter:
                count, growth, scale = spec["buckets"]
                buckets = gcp.logging.MetricBucketOptionsArgs(
                    exponential_buckets=gcp.logging.MetricBucketOptionsExponentialBucketsArgs(
                        num_finite_buckets=count, growth_factor=growth, scale=scale))
            self.metrics[key] = gcp.logging.Metric(
                f"{name}-{key.removeprefix('sdfleet_').replace('_', '-')}", project=project,
                name=metric_name(prefix, key), description=spec["description"],
                filter=log_lines,
                metric_descriptor=gcp.logging.MetricMetricDescriptorArgs(
                    metric_kind="DELTA", value_type="INT64" if counter else "DISTRIBUTION",
                    unit=spec["unit"], labels=[gcp.logging.MetricMetricDescriptorLabelArgs(
                        key=label, value_type="STRING", description=text)
                        for label, text in spec["labels"].items()]),
                label_extractors={label: f"EXTRACT(jsonPayload.{label})" for label in spec["labels"]},
                value_extractor=None if counter else f"EXTRACT(jsonPayload.{spec['value']})",
                bucket_options=buckets, opts=child)
        after_metrics = pulumi.ResourceOptions(parent=self, depends_on=list(self.metrics.values()))
        self.dashboard = gcp.monitoring.Dashboard(
            f"{name}-dashboard", project=project,
            dashboard_json=json.dumps(dashboard_definition(prefix), sort_keys=True), opts=after_metrics)
        channels = []
        if args.config.notify_email:
            self.channel = gcp.monitoring.NotificationChannel(
                f"{name}-email", project=project, type="email",
                display_name=f"sdfleet ({prefix}) operators",
                labels={"email_address": args.config.notify_email}, opts=child)
            channels = [self.channel.id]
        self.alerts = {}
        for alert in alert_definitions(prefix, args.config):
            if "absent" in alert:
                condition = gcp.monitoring.AlertPolicyConditionArgs(
                    display_name=alert["title"],
                    condition_absent=gcp.monitoring.AlertPolicyConditionConditionAbsentArgs(
                        filter=alert["filter"], duration=alert["absent"],
                        aggregations=[gcp.monitoring.AlertPolicyConditionConditionAbsentAggregationArgs(
                            alignment_period="300s", per_series_aligner="ALIGN_COUNT")]))
            else:
                condition = gcp.monitoring.AlertPolicyConditionArgs(
                    display_name=alert["title"],
                    condition_threshold=gcp.monitoring.AlertPolicyConditionConditionThresholdArgs(
                        filter=alert["filter"], comparison="COMPARISON_GT",
                        threshold_value=alert["threshold"], duration=alert["duration"],
                        aggregations=[gcp.monitoring.AlertPolicyConditionConditionThresholdAggregationArgs(
                            alignment_period="300s", per_series_aligner=alert["aligner"])]))
            self.alerts[alert["name"]] = gcp.monitoring.AlertPolicy(
                f"{name}-{alert['name']}", project=project, display_name=alert["title"],
                combiner="OR", conditions=[condition], notification_channels=channels,
                documentation=gcp.monitoring.AlertPolicyDocumentationArgs(
                    content=alert["doc"], mime_type="text/markdown"),
                opts=after_metrics)
        self.register_outputs({"dashboard": self.dashboard.id})
