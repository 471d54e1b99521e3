"""docs/images/dashboard.svg is drawn from the dashboard definition the stack deploys, and
shows every tile of it."""

from __future__ import annotations

import html

from components.gcp.monitoring import dashboard_definition
from tools import render_dashboard


def test_the_picture_is_the_definition_drawn():
    assert render_dashboard.main(["--check"]) == 0, "run python -m tools.render_dashboard"


def test_every_tile_and_the_metric_it_reads_are_in_the_picture():
    picture = render_dashboard.OUTPUT.read_text()
    tiles = dashboard_definition("sdfleet")["mosaicLayout"]["tiles"]
    assert tiles
    for tile in tiles:
        assert html.escape(tile["widget"]["title"]) in picture
        assert render_dashboard._describe(tile["widget"])[0] in picture
