"""Draw the operators' dashboard from its definition: docs/images/dashboard.svg.

    python -m tools.render_dashboard            # (re)write the picture
    python -m tools.render_dashboard --check    # exit 1 if the picture is stale

The picture is the stack's own dashboard definition (components/gcp/monitoring.py
`dashboard_definition`) laid out as Cloud Monitoring lays out a mosaic: each tile where its
xPos/yPos/width/height put it, with its title and the metric and aggregation it reads. It
shows what an operator will find, not data. tests/test_dashboard_picture.py fails when the
file and the definition disagree.
"""

from __future__ import annotations

import argparse
import html
import sys
from pathlib import Path

from components.gcp.monitoring import dashboard_definition

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "docs" / "images" / "dashboard.svg"
COLUMN, ROW, PAD = 80, 36, 8          # pixels per mosaic column and row unit, gap


def _describe(widget: dict) -> list[str]:
    query = widget["xyChart"]["dataSets"][0]["timeSeriesQuery"]["timeSeriesFilter"]
    metric = query["filter"].split('metric.type="', 1)[1].split('"', 1)[0]
    short = metric.removeprefix("logging.googleapis.com/user/")
    aggregation = query["aggregation"]
    reduce = aggregation["crossSeriesReducer"].removeprefix("REDUCE_").lower()
    by = ", ".join(f.split(".")[-1] for f in aggregation["groupByFields"])
    return [short, f"{aggregation['perSeriesAligner'].removeprefix('ALIGN_').lower()} per "
                   f"{aggregation['alignmentPeriod']}, {reduce}" + (f" by {by}" if by else "")]


def render(prefix: str = "sdfleet") -> str:
    definition = dashboard_definition(prefix)
    layout = definition["mosaicLayout"]
    tiles = layout["tiles"]
    width = layout["columns"] * COLUMN + PAD
    height = max(t["yPos"] + t["height"] for t in tiles) * ROW + PAD + 40
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="sans-serif">',
           f'<rect width="{width}" height="{height}" fill="#f8f9fa"/>',
           f'<text x="{PAD}" y="26" font-size="18" fill="#202124">'
           f'{html.escape(definition["displayName"])}</text>']
    for tile in tiles:
        x = tile["xPos"] * COLUMN + PAD
        y = tile["yPos"] * ROW + PAD + 40
        w, h = tile["width"] * COLUMN - PAD, tile["height"] * ROW - PAD
        widget = tile["widget"]
        out.append(f'<rect x="{x}" y="{y}" width="{w}" height="{h}" rx="6" fill="#ffffff" '
                   f'stroke="#dadce0"/>')
        out.append(f'<text x="{x + 10}" y="{y + 22}" font-size="13" fill="#202124">'
                   f'{html.escape(widget["title"])}</text>')
        for i, line in enumerate(_describe(widget)):
            out.append(f'<text x="{x + 10}" y="{y + 44 + 16 * i}" font-size="11" fill="#5f6368">'
                       f'{html.escape(line)}</text>')
        # The axes a line chart is drawn in.
        base = y + h - 14
        out.append(f'<polyline points="{x + 10},{y + 80} {x + 10},{base} {x + w - 10},{base}" '
                   f'fill="none" stroke="#dadce0"/>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the picture is stale")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if not OUTPUT.is_file() or OUTPUT.read_text() != text:
            print(f"{OUTPUT.relative_to(ROOT)} is stale: run python -m tools.render_dashboard",
                  file=sys.stderr)
            return 1
        return 0
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(text)
    print(f"wrote {OUTPUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
