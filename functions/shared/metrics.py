"""The functions' metrics: each is a log line the functions print and a log-based metric the
stack defines on it (components/gcp/monitoring.py), from this one list.

Why log-based metrics and not a metrics client: the functions already print one structured
JSON line per thing worth counting; Cloud Logging turns a line's fields into a counter or a
distribution with no client library in the function, no extra egress, no export interval a
short-lived instance can miss, and nothing to flush when an instance is frozen between requests.

Imports nothing: the Pulumi program loads it by path without the functions' dependencies.
"""

# The log lines (`message` of the JSON line) the metrics read.
ALLOCATOR_ANSWER = "allocator answer"   # one per /allocate call: outcome, profile, latency_ms
SESSION_ENDED = "session ended"         # one per ended session: reason
CULLER_PASS = "culler pass"             # one per pass: passMs, examined, ...
COLD_START = "cold start"               # one per pod, once: profile, total and the phases
SKIPPED_RECORD = "culler skipped a record"

# name -> definition. kind: "counter" (counts lines) or "distribution" (of `value`, a field);
# labels: line field -> label; buckets: exponential (count, growth, scale) of the value's unit.
METRICS = {
    "sdfleet_allocator_answers": {
        "message": ALLOCATOR_ANSWER, "kind": "counter", "unit": "1",
        "labels": {"outcome": "What the person was told: ready, starting, waiting-for-gpu, "
                              "loading-model, no-capacity, refused, unavailable, ...",
                   "profile": "The profile asked for"},
        "description": "Allocator answers to /allocate by outcome and profile."},
    "sdfleet_allocator_latency_ms": {
        "message": ALLOCATOR_ANSWER, "kind": "distribution", "value": "latency_ms", "unit": "ms",
        "labels": {"outcome": "What the person was told"},
        "buckets": (20, 1.5, 5), "description": "Time the allocator took to answer /allocate."},
    "sdfleet_sessions_ended": {
        "message": SESSION_ENDED, "kind": "counter", "unit": "1",
        "labels": {"reason": "Why: idle, max-age, budget, admin, switched, gone, orphan, ..."},
        "description": "Sessions ended, by reason (the culler's culls and the allocator's)."},
    "sdfleet_culler_pass_ms": {
        "message": CULLER_PASS, "kind": "distribution", "value": "passMs", "unit": "ms",
        "labels": {}, "buckets": (20, 1.6, 10), "description": "Duration of a culler pass."},
    "sdfleet_culler_skipped_records": {
        "message": SKIPPED_RECORD, "kind": "counter", "unit": "1", "labels": {},
        "description": "Records the culler skipped as malformed."},
    "sdfleet_cold_start_seconds": {
        "message": COLD_START, "kind": "distribution", "value": "total", "unit": "s",
        "labels": {"profile": "The profile of the pod"},
        "buckets": (20, 1.35, 10), "description": "A new pod's way from creation to its first image."},
}
