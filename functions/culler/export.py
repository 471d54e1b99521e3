"""The usage export: every ended session in the `usage` stream, copied to BigQuery once a day,
so usage survives a Redis loss and can be queried (tools/usage.py reads the same records).

    POST /export   (the culler function; Cloud Scheduler, same OIDC caller as /cull)

From the cursor `<p>export-cursor` (the last stream id copied), in batches, with BigQuery's
streaming insert (tabledata.insertAll): each row's `insertId` is its stream id, so a batch
sent again after a failure is not stored twice (BigQuery's best-effort de-duplication), and
the cursor moves only after BigQuery accepted the batch without errors.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone

import urllib3
from shared.agones import TokenSource
from shared.profiles import fleet_of
from shared.responses import log

BATCH = 500


class ExportFailed(Exception):
    pass


def _stamp(value) -> str | None:
    try:
        return datetime.fromtimestamp(float(value), tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")
    except (TypeError, ValueError, OverflowError):
        return None


def row(entry_id: str, fields: dict, fleets: tuple[str, ...]) -> dict:
    """One BigQuery row (the table's schema: components/gcp/usage_export.py)."""
    gs = fields.get("gs", "")
    fleet = fleet_of(gs, fleets)

    def number(key):
        try:
            return float(fields.get(key))
        except (TypeError, ValueError):
            return None
    return {"insertId": entry_id, "json": {
        "entry_id": entry_id, "identity": fields.get("id") or None,
        "email": fields.get("email") or None, "game_server": gs or None, "fleet": fleet,
        "started_at": _stamp(fields.get("start")), "ended_at": _stamp(fields.get("end")),
        "seconds": number("seconds"), "gpu_seconds": number("gpu_seconds"),
        "reason": fields.get("reason") or None, "budget_group": fields.get("group") or None}}


class UsageExport:
    def __init__(self, store, table: str, api_url: str = "https://bigquery.googleapis.com",
                 tokens: TokenSource | None = None, fleets: tuple[str, ...] = ()):
        project, dataset, name = table.split(".")
        self.store, self.fleets = store, fleets
        self.url = (f"{api_url.rstrip('/')}/bigquery/v2/projects/{project}/datasets/{dataset}"
                    f"/tables/{name}/insertAll")
        self.tokens = tokens or TokenSource()
        self.http = urllib3.PoolManager(num_pools=1, timeout=urllib3.Timeout(total=30), retries=False)
        self.cursor_key = f"{store.prefix}export-cursor"

    def run(self, deadline_seconds: float = 100.0) -> dict:
        started = time.monotonic()
        cursor = self.store.client.get(self.cursor_key) or "0-0"
        exported = 0
        while time.monotonic() - started < deadline_seconds:
            batch = self.store.client.xrange(self.store.usage_key, min=f"({cursor}", count=BATCH)
            if not batch:
                break
            self._insert([row(entry_id, fields, self.fleets) for entry_id, fields in batch])
            cursor = batch[-1][0]
            self.store.client.set(self.cursor_key, cursor)
            exported += len(batch)
        log("INFO", "usage exported", rows=exported, cursor=cursor)
        return {"exported": exported, "cursor": cursor}

    def _insert(self, rows: list[dict]) -> None:
        body = json.dumps({"kind": "bigquery#tableDataInsertAllRequest", "rows": rows}).encode()
        try:
            response = self.http.request("POST", self.url, body=body, headers={
                "Authorization": f"Bearer {self.tokens.token()}",
                "Content-Type": "application/json"})
        except urllib3.exceptions.HTTPError as e:
            raise ExportFailed(f"insertAll: {type(e).__name__}") from None
        try:
            answer = json.loads(response.data or b"{}")
        except ValueError:
            answer = {}
        if response.status != 200:
            message = str((answer.get("error") or {}).get("message", ""))[:200]
            raise ExportFailed(f"insertAll: HTTP {response.status} {message}")
        if answer.get("insertErrors"):
            raise ExportFailed(f"insertAll: {len(answer['insertErrors'])} row(s) refused: "
                               f"{json.dumps(answer['insertErrors'][0])[:200]}")
