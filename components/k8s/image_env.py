"""The env-name modules of the images the program starts (`images/<image>/<package>/env.py`),
loaded by path (components/env_names.py); tests/contracts/test_image_seams.py checks that the
manifests set only names the images read."""

from __future__ import annotations

from components.env_names import load_import_free

WEBUI = load_import_free("images/webui/sdfleet_webui/env.py")
ROUTER = load_import_free("images/router/sdfleet_router/env.py")
AGENT = load_import_free("images/queue-agent/sdfleet_agent/env.py")
