"""The WebUI pod's metrics: each is an event the supervisor logs (one JSON line on stderr, which
GKE sends to Cloud Logging as the webui container's log) and a log-based metric the stack
defines on it (components/gcp/monitoring.py), from this one list. Same shape and reasons as the
functions' list (functions/shared/metrics.py): no client, no port, nothing to scrape.

Imports nothing: the Pulumi program loads it by path without the image's dependencies.
"""

WEBUI_READY = "webui-ready"                   # the WebUI made its first image: seconds_to_ready
WEBUI_RESTART = "webui-restart-scheduled"     # the WebUI exited or stopped answering; restarting
WEBUI_GAVE_UP = "webui-gave-up"               # too many restarts in the window: the pod failed

# name -> definition, as in functions/shared/metrics.py but keyed by the line's `event`.
METRICS = {
    "sdfleet_webui_restarts": {
        "event": WEBUI_RESTART, "kind": "counter", "unit": "1",
        "labels": {"framework": "The WebUI framework of the pod"},
        "description": "WebUI restarts in people's pods (a crash, a hang, a failed image)."},
    "sdfleet_webui_gave_up": {
        "event": WEBUI_GAVE_UP, "kind": "counter", "unit": "1",
        "labels": {"framework": "The WebUI framework of the pod"},
        "description": "Pods whose WebUI failed too often to be restarted again."},
    "sdfleet_webui_seconds_to_ready": {
        "event": WEBUI_READY, "kind": "distribution", "value": "seconds_to_ready", "unit": "s",
        "labels": {"framework": "The WebUI framework of the pod"},
        "buckets": (20, 1.35, 2),
        "description": "From the WebUI's start to its first image (after a restart too)."},
}
