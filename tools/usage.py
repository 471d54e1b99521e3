"""Who used how much: GPU-hours per person and profile for a month, and their cost at the
price table, from the platform's Redis (the ledger the allocator and culler keep).

    python -m tools.usage --stack dev --month 2026-12 --redis redis://:<AUTH>@127.0.0.1:6379
    python -m tools.usage --stack dev --month 2026-12 --bigquery <project.dataset.table>

From BigQuery (the stack's output `usageTable`, with usageExport on) it reads what the daily
export copied, as your gcloud application-default credentials; from Redis, everything up to
the last ended session.

The Redis of a real stack is private (Memorystore on the VPC): reach it through a tunnel
(`gcloud compute ssh <a VM on the VPC> -- -L 6379:<redis host>:6379`) and pass its URL, with
the AUTH string from Secret Manager; `--tls-ca` for the instance's server CA. The stack file
gives the profiles (which fleet is which) and, through the cost estimate, what a pod-hour of
each profile costs. Every ended session is in the `usage` stream with its GPU-seconds; the
group column is the shared group budget it drew on, if any.
"""

from __future__ import annotations

import argparse
import calendar
import sys
from collections import defaultdict
from dataclasses import dataclass


@dataclass
class Row:
    email: str
    profile: str
    group: str = ""
    sessions: int = 0
    gpu_seconds: float = 0.0
    cost_usd: float | None = 0.0


def month_bounds(month: str, reset_day: int = 1) -> tuple[int, int]:
    """[start, end) of a budget month (UTC, from `reset_day`) in milliseconds (stream ids
    are ms timestamps)."""
    year, mon = (int(x) for x in month.split("-"))
    if not 1 <= mon <= 12:
        raise ValueError(month)
    start = calendar.timegm((year, mon, reset_day, 0, 0, 0, 0, 0, 0))
    year, mon = (year + 1, 1) if mon == 12 else (year, mon + 1)
    return start * 1000, calendar.timegm((year, mon, reset_day, 0, 0, 0, 0, 0, 0)) * 1000


def profile_of(game_server: str, fleets: dict[str, str]) -> str:
    """The profile whose fleet named the game server (<fleet>-<set>-<id>); longest wins."""
    match = max((f for f in fleets if game_server.startswith(f + "-")), key=len, default=None)
    return fleets[match] if match else "?"


def tally(entries, fleets: dict[str, str], pod_hour_usd: dict[str, float | None],
          gpus_per_pod: dict[str, float]) -> list[Row]:
    """Rows per (person, profile, group budget) from usage stream entries ({field: value})."""
    rows: dict[tuple[str, str, str], Row] = defaultdict(lambda: Row("", ""))
    for fields in entries:
        profile = profile_of(fields.get("gs", ""), fleets)
        who = fields.get("email") or fields.get("id") or "?"
        group = fields.get("group") or ""
        row = rows[(who, profile, group)]
        row.email, row.profile, row.group = who, profile, group
        row.sessions += int(fields.get("sessions") or 1)
        gpu_seconds = float(fields.get("gpu_seconds") or 0.0)
        row.gpu_seconds += gpu_seconds
        price = pod_hour_usd.get(profile)
        if price is None or row.cost_usd is None:
            row.cost_usd = None
        else:
            row.cost_usd += gpu_seconds / max(gpus_per_pod.get(profile, 1.0), 1e-9) / 3600 * price
    return sorted(rows.values(), key=lambda r: (-r.gpu_seconds, r.email, r.profile))


def render(rows: list[Row], month: str) -> str:
    lines = [f"GPU usage in {month} (UTC), sessions that ended that month",
             f"{'person':<32} {'group':<28} {'profile':<20} {'sessions':>8} {'GPU-hours':>10} "
             f"{'cost USD':>10}"]
    for r in rows:
        cost = f"{r.cost_usd:10.2f}" if r.cost_usd is not None else f"{'unpriced':>10}"
        lines.append(f"{r.email:<32} {r.group or '-':<28} {r.profile:<20} {r.sessions:>8} "
                     f"{r.gpu_seconds / 3600:>10.2f} {cost}")
    total = sum(r.gpu_seconds for r in rows) / 3600
    priced = [r.cost_usd for r in rows if r.cost_usd is not None]
    lines.append(f"{'total':<32} {'':<28} {'':<20} {sum(r.sessions for r in rows):>8} "
                 f"{total:>10.2f} {sum(priced):>10.2f}")
    return "\n".join(lines)


def stack_prices(stack: str):
    """(fleet -> profile, profile -> pod-hour USD, profile -> GPUs per pod) from the stack file
    and the cost estimate of its plan (the same numbers `make plan` prints)."""
    from tools.cost import estimate
    from tools.plan import _validate
    from tools.preview import read_stack_config, run_program
    raw = read_stack_config(stack)
    config = _validate(stack, raw)
    platform = config.platform
    prefix = f"{platform.name_prefix}-webui"
    fleets, gpus = {}, {}
    for p in platform.effective_profiles:
        fleet = prefix if p.implicit else f"{prefix}-{p.name}"
        fleets[fleet] = p.name
        gpus[p.name] = platform.gpu_pool(p.gpu_pool).gpus_per_pod
    cost = estimate(run_program(raw, stack=stack, preview=True), config)
    hours = dict(cost.get("profileHourUsd") or {})
    prices = {name: hours.get(name, hours.get(f"fleet {fleet}")) for fleet, name in fleets.items()}
    reset_day = platform.budgets.reset_day if platform.budgets else 1
    return fleets, prices, gpus, reset_day


QUERY = """
SELECT IFNULL(email, identity) AS email, IFNULL(budget_group, '') AS budget_group,
       IFNULL(fleet, '') AS fleet, COUNT(*) AS sessions, SUM(gpu_seconds) AS gpu_seconds
FROM `{table}`
WHERE ended_at >= TIMESTAMP_MILLIS(@start) AND ended_at < TIMESTAMP_MILLIS(@end)
GROUP BY 1, 2, 3
"""


def bigquery_entries(table: str, start_ms: int, end_ms: int, token: str,
                     api_url: str = "https://bigquery.googleapis.com") -> list[dict]:
    """The month's sessions, summed by BigQuery (jobs.query), as usage-stream-like entries
    (one per person, group and fleet) that `tally` reads."""
    import json
    import time as _time
    import urllib.request
    project = table.split(".")[0]
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def call(method, path, body=None):
        request = urllib.request.Request(api_url.rstrip("/") + path, method=method, headers=headers,
                                         data=json.dumps(body).encode() if body is not None else None)
        with urllib.request.urlopen(request, timeout=120) as answer:
            return json.loads(answer.read())
    result = call("POST", f"/bigquery/v2/projects/{project}/queries", {
        "query": QUERY.format(table=table.replace("`", "")), "useLegacySql": False,
        "parameterMode": "NAMED", "timeoutMs": 60000,
        "queryParameters": [
            {"name": "start", "parameterType": {"type": "INT64"}, "parameterValue": {"value": str(start_ms)}},
            {"name": "end", "parameterType": {"type": "INT64"}, "parameterValue": {"value": str(end_ms)}}]})
    while not result.get("jobComplete"):
        _time.sleep(1)
        job = result["jobReference"]
        result = call("GET", f"/bigquery/v2/projects/{project}/queries/{job['jobId']}"
                             f"?location={job.get('location', '')}")
    names = [f["name"] for f in result["schema"]["fields"]]
    entries = []
    for row in result.get("rows") or []:
        values = dict(zip(names, (cell.get("v") for cell in row["f"])))
        fleet = values.get("fleet") or ""
        # One entry per group of sessions: `tally` counts sessions from `sessions`.
        entries.append({"email": values["email"], "group": values.get("budget_group") or "",
                        "gs": f"{fleet}-x" if fleet else "", "gpu_seconds": values["gpu_seconds"],
                        "sessions": values["sessions"]})
    return entries


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack", default="dev")
    parser.add_argument("--month", required=True, help="YYYY-MM (UTC)")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379",
                        help="the platform's Redis, e.g. through a tunnel")
    parser.add_argument("--tls-ca", help="the instance's server CA (Memorystore in-transit TLS)")
    parser.add_argument("--prefix", default="sdfleet:")
    parser.add_argument("--bigquery", metavar="PROJECT.DATASET.TABLE",
                        help="read the exported sessions from BigQuery instead of Redis")
    args = parser.parse_args(argv)
    try:
        month_bounds(args.month)
    except ValueError:
        print(f"--month: {args.month!r} is not YYYY-MM", file=sys.stderr)
        return 2
    if args.bigquery:
        import google.auth
        from google.auth.transport.requests import Request
        credentials, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/bigquery.readonly"])
        credentials.refresh(Request())
        fleets, prices, gpus, reset_day = stack_prices(args.stack)
        start, end = month_bounds(args.month, reset_day)
        entries = bigquery_entries(args.bigquery, start, end, credentials.token)
        print(render(tally(entries, fleets, prices, gpus), args.month))
        return 0
    import redis
    options = {"decode_responses": True}
    if args.tls_ca:
        options.update(ssl_ca_certs=args.tls_ca, ssl_cert_reqs="required")
    client = redis.Redis.from_url(args.redis, **options)
    fleets, prices, gpus, reset_day = stack_prices(args.stack)
    start, end = month_bounds(args.month, reset_day)
    entries, cursor = [], f"{start}-0"
    try:
        while True:
            batch = client.xrange(f"{args.prefix}usage", min=cursor, max=f"{end - 1}-18446744073709551615",
                                  count=10000)
            entries += [fields for _, fields in batch]
            if len(batch) < 10000:
                break
            cursor = "(" + batch[-1][0]
    except redis.exceptions.RedisError as exc:
        print(f"cannot read the usage from {args.redis}: {exc}", file=sys.stderr)
        return 1
    print(render(tally(entries, fleets, prices, gpus), args.month))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
