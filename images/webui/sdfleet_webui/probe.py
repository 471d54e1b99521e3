"""Kubernetes exec probes for the WebUI container. They only read.

    python -m sdfleet_webui.probe startup|readiness|liveness

Each probe does at most two GETs: the supervisor's ``/info`` and the framework's
read-only health path. They never clear logs, never set options and never load a model
(sdnext-dynamic's probes did all three).

- startup / readiness: the supervisor says "ready" and the WebUI API answers now.
- liveness: judges the present, not lifetime counters. It fails when the supervisor does
  not answer, when it gave up restarting, or when out-of-memory errors are *repeating*
  (``SDFLEET_LIVENESS_OOM_LIMIT`` within the supervisor's sliding window). One transient
  OOM never fails it, and old ones age out of the window. A WebUI that merely crashed is
  not a liveness failure: the supervisor restarts it faster than a container restart.

Exit status 0 = pass, 1 = fail; one line on stdout says why.
"""

from __future__ import annotations

import sys

import requests

from . import settings as st


def readiness_verdict(info: dict | None, webui_answers: bool) -> tuple[bool, str]:
    if info is None:
        return False, "supervisor not answering"
    if info.get("state") != "ready":
        return False, f"WebUI {info.get('framework')} is {info.get('state')}"
    if not webui_answers:
        return False, "WebUI API not answering"
    return True, f"WebUI {info.get('framework')} ready"


def liveness_verdict(info: dict | None, oom_limit: int,
                     stall_limit: float | None = None) -> tuple[bool, str]:
    if info is None:
        return False, "supervisor not answering"
    stalled = float(info.get("monitorStalledSeconds") or 0.0)
    if stall_limit is not None and stalled > stall_limit:
        # The API answers but the loop that watches the WebUI does not run: nothing would
        # notice a hung WebUI. This probe is the pod's only liveness check (the Fleet's Agones
        # health check cannot run beside it: README, "Health checks").
        return False, (f"the supervisor's monitor loop has not run for {stalled:.0f}s "
                       f"(limit {stall_limit:.0f}s)")
    if info.get("state") == "failed":
        return False, f"supervisor gave up restarting the WebUI ({info.get('lastRestartReason')})"
    recent = int(info.get("recentOomEvents") or 0)
    if recent >= oom_limit:
        return False, (f"{recent} out-of-memory errors in the last "
                       f"{info.get('oomWindowSeconds')}s (limit {oom_limit})")
    return True, f"alive (state {info.get('state')}, {recent} recent OOM errors)"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1 or argv[0] not in ("startup", "readiness", "liveness"):
        print("usage: python -m sdfleet_webui.probe startup|readiness|liveness; "
              f"got {argv!r}", file=sys.stderr)
        return 2
    try:
        settings = st.ProbeSettings.from_env()
    except st.SettingError as exc:
        print(f"probe misconfigured: {exc}")
        return 1
    port, webui_port, timeout = settings.supervisor_port, settings.webui_port, settings.timeout
    oom_limit, stall_limit = settings.oom_limit, settings.stall_limit
    try:
        info = requests.get(f"http://127.0.0.1:{port}/info", timeout=timeout).json()
    except (requests.RequestException, ValueError):
        info = None
    if argv[0] == "liveness":
        ok, why = liveness_verdict(info, oom_limit, stall_limit)
    else:
        answers = False
        if info and info.get("state") == "ready":
            try:
                answers = requests.get(f"http://127.0.0.1:{webui_port}{info['healthPath']}",
                                       timeout=timeout).status_code == 200
            except requests.RequestException:
                answers = False
        ok, why = readiness_verdict(info, answers)
    print(f"{argv[0]}: {'pass' if ok else 'fail'}: {why}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
