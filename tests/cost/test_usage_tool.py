"""`python -m tools.usage`: GPU-hours and cost per person and profile for a month, from the
usage stream the culler writes, priced at the stack's own cost estimate."""

from __future__ import annotations

import subprocess
import sys

import redis

from testing.helpers.servers import RedisServer
from tools.preview import ROOT
from tools.usage import month_bounds, profile_of, render, tally


def test_tally_prices_each_profile_and_counts_gpu_seconds():
    fleets = {"sdfleet-webui-a1111-l4": "a1111-l4", "sdfleet-webui-comfyui-a100": "comfyui-a100"}
    prices, gpus = {"a1111-l4": 0.9, "comfyui-a100": 3.72}, {"a1111-l4": 1.0, "comfyui-a100": 0.5}
    entries = [
        {"email": "ada@example.com", "gs": "sdfleet-webui-a1111-l4-abc-1", "gpu_seconds": "3600"},
        {"email": "ada@example.com", "gs": "sdfleet-webui-a1111-l4-abc-2", "gpu_seconds": "1800"},
        {"email": "bo@example.com", "gs": "sdfleet-webui-comfyui-a100-x-1", "gpu_seconds": "1800",
         "group": "team@example.com"},
        {"id": "g-1", "gs": "other-9", "gpu_seconds": "60"},
    ]
    rows = tally(entries, fleets, prices, gpus)
    ada = next(r for r in rows if r.email == "ada@example.com")
    assert (ada.profile, ada.sessions, ada.gpu_seconds) == ("a1111-l4", 2, 5400)
    assert round(ada.cost_usd, 4) == round(1.5 * 0.9, 4)
    bo = next(r for r in rows if r.email == "bo@example.com")
    assert round(bo.cost_usd, 4) == round(1.0 * 3.72, 4)     # half a GPU for an hour: one pod-hour
    assert bo.group == "team@example.com"
    unknown = next(r for r in rows if r.email == "g-1")
    assert unknown.profile == "?" and unknown.cost_usd is None
    text = render(rows, "2026-12")
    assert "unpriced" in text and "ada@example.com" in text
    assert profile_of("sdfleet-webui-a1111-l4-abc-1", {"sdfleet-webui": "x", **fleets}) == "a1111-l4"
    assert month_bounds("2026-12") == (1796083200000, 1798761600000)


def test_the_command_reads_a_month_of_the_stream_and_prices_the_dev_stack():
    server = RedisServer().start()
    try:
        client = redis.Redis(port=server.port, password=server.password, decode_responses=True)
        start, end = month_bounds("2026-12")
        client.xadd("sdfleet:usage", {"email": "ada@example.com", "id": "g-1",
                                      "gs": "sdfleet-webui-a1111-l4-abc-1", "gpu_seconds": "7200"},
                    id=f"{start + 5000}-0")
        client.xadd("sdfleet:usage", {"email": "late@example.com", "id": "g-2",
                                      "gs": "sdfleet-webui-a1111-l4-abc-2", "gpu_seconds": "60"},
                    id=f"{end + 5000}-0")                       # January: not counted
        out = subprocess.run([sys.executable, "-m", "tools.usage", "--stack", "dev", "--month",
                              "2026-12", "--redis", f"redis://:{server.password}@127.0.0.1:{server.port}"],
                             cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        assert "ada@example.com" in out.stdout and "late@example.com" not in out.stdout
        line = next(l for l in out.stdout.splitlines() if l.startswith("ada@example.com"))
        assert line.split()[1:5] == ["-", "a1111-l4", "1", "2.00"]
        assert float(line.split()[5]) > 0                          # priced from the plan
        bad = subprocess.run([sys.executable, "-m", "tools.usage", "--month", "December"],
                             cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert bad.returncode == 2 and "YYYY-MM" in bad.stderr
    finally:
        server.stop()


def test_the_month_from_bigquery_is_read_with_its_query_api():
    """A local fake of BigQuery's jobs.query (and getQueryResults while the job runs)."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from tools.usage import bigquery_entries
    seen = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append((self.path, body, self.headers.get("Authorization")))
            self._send({"jobComplete": False, "jobReference": {"jobId": "j1", "location": "US"}})

        def do_GET(self):  # noqa: N802
            seen.append((self.path, None, self.headers.get("Authorization")))
            self._send({"jobComplete": True, "schema": {"fields": [
                {"name": "email"}, {"name": "budget_group"}, {"name": "fleet"},
                {"name": "sessions"}, {"name": "gpu_seconds"}]},
                "rows": [{"f": [{"v": "ada@example.com"}, {"v": "team@example.com"},
                                {"v": "sdfleet-webui-a1111-l4"}, {"v": "3"}, {"v": "5400"}]}]})

        def _send(self, body):
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        start, end = month_bounds("2026-12")
        entries = bigquery_entries("proj.sdfleet_usage.sessions", start, end, "tok",
                                   f"http://127.0.0.1:{httpd.server_address[1]}")
    finally:
        httpd.shutdown()
    post = seen[0]
    assert post[0] == "/bigquery/v2/projects/proj/queries" and post[2] == "Bearer tok"
    assert "`proj.sdfleet_usage.sessions`" in post[1]["query"]
    assert {p["name"]: p["parameterValue"]["value"] for p in post[1]["queryParameters"]} == {
        "start": str(start), "end": str(end)}
    assert seen[1][0] == "/bigquery/v2/projects/proj/queries/j1?location=US"
    rows = tally(entries, {"sdfleet-webui-a1111-l4": "a1111-l4"}, {"a1111-l4": 0.9},
                 {"a1111-l4": 1.0})
    assert [(r.email, r.group, r.profile, r.sessions, r.gpu_seconds) for r in rows] == [
        ("ada@example.com", "team@example.com", "a1111-l4", 3, 5400.0)]
