"""Image builds read as files: Dockerfiles, their archives, the pins each image installs.
These run in the development venv; the programs inside the images are tested on their own
interpreters (tests/images on the WebUI image's Python)."""

from __future__ import annotations

import sys
from pathlib import Path

WEBUI_SRC = Path(__file__).resolve().parents[2] / "images" / "webui"
if str(WEBUI_SRC) not in sys.path:
    sys.path.insert(0, str(WEBUI_SRC))
