"""The operators' view: every metric of functions/shared/metrics.py is a log-based metric on
this stack's functions' lines; every dashboard tile and alert reads a metric that exists (one
the stack defines or one GKE or Filestore publishes); every alert says what to do; alerts go to
the configured address."""

from __future__ import annotations

import json
import re

from components.gcp.monitoring import BUILT_IN_METRICS, function_metrics, pod_metrics

METRIC = "gcp:logging/metric:Metric"
ALERT = "gcp:monitoring/alertPolicy:AlertPolicy"


def _metric_types(text: str) -> set[str]:
    return set(re.findall(r'metric\.type=\\?"([^"\\]+)\\?"', text))


def test_each_registry_metric_is_a_log_based_metric_on_its_line(dev_update):
    registry = {**function_metrics(), **pod_metrics()}
    made = {r.inputs["name"]: r.inputs for r in dev_update.of_type(METRIC)}
    assert set(made) == set(registry)                   # prefix sdfleet: names as registered
    for name, spec in registry.items():
        metric = made[name]
        if name in pod_metrics():
            # The supervisor's events in the WebUI containers of the fleet's namespace.
            assert f'jsonPayload.event="{spec["event"]}"' in metric["filter"]
            assert 'resource.type="k8s_container"' in metric["filter"]
            assert 'resource.labels.namespace_name="sdfleet-webui"' in metric["filter"]
            assert 'resource.labels.container_name="webui"' in metric["filter"]
        else:
            assert f'jsonPayload.message="{spec["message"]}"' in metric["filter"]
            assert 'resource.labels.service_name=~"^sdfleet-fn-"' in metric["filter"]
        assert metric["labelExtractors"] == {k: f"EXTRACT(jsonPayload.{k})" for k in spec["labels"]}
        descriptor = metric["metricDescriptor"]
        assert descriptor["metricKind"] == "DELTA"
        if spec["kind"] == "counter":
            assert descriptor["valueType"] == "INT64" and "valueExtractor" not in metric
        else:
            assert descriptor["valueType"] == "DISTRIBUTION"
            assert metric["valueExtractor"] == f"EXTRACT(jsonPayload.{spec['value']})"
            count, growth, scale = spec["buckets"]
            assert metric["bucketOptions"]["exponentialBuckets"] == {
                "numFiniteBuckets": count, "growthFactor": growth, "scale": scale}


def test_no_tile_or_alert_reads_a_metric_nobody_writes(dev_update):
    defined = {"logging.googleapis.com/user/" + r.inputs["name"] for r in dev_update.of_type(METRIC)}
    dashboard = dev_update.one("gcp:monitoring/dashboard:Dashboard").inputs["dashboardJson"]
    read = _metric_types(dashboard)
    for alert in dev_update.of_type(ALERT):
        read |= _metric_types(json.dumps(alert.inputs["conditions"]))
    assert read and read <= defined | set(BUILT_IN_METRICS), read - defined - set(BUILT_IN_METRICS)
    # and every stack metric is on the dashboard or behind an alert (the skipped-records
    # counter is read in the logs)
    assert defined - read <= {"logging.googleapis.com/user/sdfleet_culler_skipped_records"}


def test_every_alert_says_what_to_do_and_goes_to_the_operators(plan, platform_of, dev_update):
    alerts = dev_update.of_type(ALERT)
    assert {a.name.removeprefix("sdfleet-ops-") for a in alerts} == {
        "allocations-failing", "no-gpu-capacity", "slow-cold-starts", "culler-not-running",
        "webui-failing", "store-nearly-full"}
    for alert in alerts:
        assert len(alert.inputs["documentation"]["content"]) > 80
        assert not alert.inputs.get("notificationChannels")      # no address configured
    told = plan(platform_of(lambda p: p.setdefault("monitoring", {}).update(
        notifyEmail="oncall@example.com", coldStartP95Minutes=7)))
    (channel,) = told.of_type("gcp:monitoring/notificationChannel:NotificationChannel")
    assert channel.inputs["labels"] == {"email_address": "oncall@example.com"}
    for alert in told.of_type(ALERT):
        assert alert.inputs["notificationChannels"] == [f"{channel.name}-id"]   # the mock's id
    slow = told.one(ALERT, "slow-cold-starts").inputs["conditions"][0]["conditionThreshold"]
    assert slow["thresholdValue"] == 420.0


def test_monitoring_can_be_turned_off(plan, platform_of):
    off = plan(platform_of(lambda p: p.setdefault("monitoring", {}).update(enabled=False)))
    assert not off.of_type(METRIC) and not off.of_type(ALERT)


def test_the_readme_names_every_tile_and_alert():
    from components.config.monitoring import MonitoringConfig
    from components.gcp.monitoring import alert_definitions, dashboard_definition
    from tools.preview import ROOT
    readme = " ".join((ROOT / "README.md").read_text().split())
    for tile in dashboard_definition("sdfleet")["mosaicLayout"]["tiles"]:
        assert tile["widget"]["title"] in readme, tile["widget"]["title"]
    for alert in alert_definitions("sdfleet", MonitoringConfig()):
        assert f"| {alert['title']} |" in readme, alert["title"]
