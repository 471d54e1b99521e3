"""The WebUI pod's metrics are log-based metrics on the supervisor's events
(sdfleet_webui/metrics.py): the supervisor, run for real, writes each event with the fields the
metric extracts, as one JSON line each."""

from __future__ import annotations

from sdfleet_webui.metrics import METRICS

from tests.images.supervisor_harness import SupervisorUnderTest


def _check(events: list[dict], spec: dict) -> None:
    assert events, spec["event"]
    for event in events:
        for label in spec["labels"]:
            assert isinstance(event.get(label), str) and event[label], (label, event)
        if spec["kind"] == "distribution":
            assert isinstance(event.get(spec["value"]), (int, float)), (spec["value"], event)


def test_a_restart_and_a_ready_write_the_events_their_metrics_read(tmp_path):
    with SupervisorUnderTest(tmp_path, [{"crash_after": 0.3, "exit_code": 3}, {}]) as sup:
        sup.wait_for(lambda i: i["state"] == "ready" and i["restarts"] == 1, what="a restart")
        for name in ("sdfleet_webui_restarts", "sdfleet_webui_seconds_to_ready"):
            _check(sup.events(METRICS[name]["event"]), METRICS[name])
        ready = sup.events(METRICS["sdfleet_webui_seconds_to_ready"]["event"])[-1]
        assert 0 < ready["seconds_to_ready"] < 30


def test_a_webui_that_keeps_failing_writes_the_gave_up_event(tmp_path):
    crash = {"crash_after": 0.2, "exit_code": 4}
    with SupervisorUnderTest(tmp_path, [crash] * 6, SDFLEET_MAX_RESTARTS="2",
                             SDFLEET_BACKOFF_SECONDS="0.1") as sup:
        sup.wait_for(lambda i: i["state"] == "failed", what="the supervisor giving up")
        spec = METRICS["sdfleet_webui_gave_up"]
        _check(sup.events(spec["event"]), spec)


def test_every_metric_is_one_of_the_two_kinds_with_what_its_kind_needs():
    for name, spec in METRICS.items():
        assert name.startswith("sdfleet_webui_") and spec["kind"] in ("counter", "distribution")
        assert spec["description"] and spec["event"]
        if spec["kind"] == "distribution":
            count, growth, scale = spec["buckets"]
            assert count > 0 and growth > 1 and scale > 0 and spec["value"]
