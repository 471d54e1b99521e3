"""The daily usage export: ended sessions from the Redis stream into BigQuery's streaming
insert (a local fake of tabledata.insertAll), once each, resumable, and the row's fields are
exactly the table's schema that the stack makes."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from export import ExportFailed, UsageExport
from shared.agones import TokenSource
from shared.state import SessionStore, usage_record

PATH = "/bigquery/v2/projects/proj/datasets/sdfleet_usage/tables/sessions/insertAll"


class FakeBigQuery:
    """insertAll as BigQuery answers it: 200 {"kind": ...} or 200 with insertErrors."""

    def __init__(self):
        self.rows: dict[str, dict] = {}        # insertId -> row (BigQuery de-duplicates by it)
        self.requests = 0
        self.fail_with: int | None = None
        self.refuse_rows = False
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests += 1
                if self.path != PATH or self.headers.get("Authorization") != "Bearer bq-token":
                    return self._send(404, {"error": {"message": "not found"}})
                if fake.fail_with:
                    return self._send(fake.fail_with, {"error": {"message": "backend error"}})
                if fake.refuse_rows:
                    return self._send(200, {"kind": "bigquery#tableDataInsertAllResponse",
                                            "insertErrors": [{"index": 0, "errors": [
                                                {"reason": "invalid", "message": "no such field"}]}]})
                for r in body["rows"]:
                    fake.rows[r["insertId"]] = r["json"]
                return self._send(200, {"kind": "bigquery#tableDataInsertAllResponse"})

            def _send(self, status, body):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"


@pytest.fixture
def bigquery():
    fake = FakeBigQuery()
    yield fake
    fake.httpd.shutdown()


@pytest.fixture
def store(m_redis_client, clean):
    return SessionStore(m_redis_client, "sdfleet:")


def _ended(store, n, start=0):
    for i in range(start, start + n):
        usage = usage_record(f"g-{10 ** 9 + i}", f"sdfleet-webui-a1111-x-{i}", 1796500000.0 + i,
                             1796503600.0 + i, "idle")
        store.record_usage(usage)


def test_every_ended_session_goes_once_and_the_export_resumes(store, bigquery):
    export = UsageExport(store, "proj.sdfleet_usage.sessions", bigquery.url,
                         TokenSource("bq-token"), fleets=("sdfleet-webui-a1111", "sdfleet-webui"))
    _ended(store, 1200)
    first = export.run()
    assert first["exported"] == 1200 and len(bigquery.rows) == 1200
    assert bigquery.requests == 3                                  # batches of 500
    row = next(iter(bigquery.rows.values()))
    assert row["fleet"] == "sdfleet-webui-a1111" and row["reason"] == "idle"
    assert row["gpu_seconds"] == 3600.0 and row["ended_at"].startswith("2026-12-")
    _ended(store, 5, start=1200)
    assert export.run()["exported"] == 5 and len(bigquery.rows) == 1205


def test_a_failed_insert_keeps_the_cursor_and_the_retry_stores_nothing_twice(store, bigquery):
    export = UsageExport(store, "proj.sdfleet_usage.sessions", bigquery.url, TokenSource("bq-token"))
    _ended(store, 10)
    bigquery.fail_with = 503
    with pytest.raises(ExportFailed, match="HTTP 503"):
        export.run()
    bigquery.fail_with = None
    bigquery.refuse_rows = True
    with pytest.raises(ExportFailed, match="refused"):
        export.run()
    assert store.client.get("sdfleet:export-cursor") is None       # nothing counted as sent
    bigquery.refuse_rows = False
    assert export.run()["exported"] == 10
    assert len(bigquery.rows) == 10


def test_the_rows_are_the_tables_schema():
    from export import row

    from components.gcp.usage_export import SCHEMA
    fields = row("1-0", {"id": "g-1", "gs": "x", "start": "1", "end": "2", "seconds": "1",
                         "gpu_seconds": "1", "reason": "idle", "email": "a@b.c"}, ())["json"]
    assert set(fields) == {c["name"] for c in SCHEMA}
    required = [c["name"] for c in SCHEMA if c["mode"] == "REQUIRED"]
    assert all(fields[name] is not None for name in required)
