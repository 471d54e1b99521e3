"""Config model names -> files in the shared model store.

Jobs name models as the stack config does (`sdxl-base`). The model fetcher (WebUI image,
sdfleet_webui/fetch.py) records, for every model it verified, its config name and its path
relative to the store in `<store>/.sdfleet-manifest.json` (sdfleet_webui/manifest.py); that
manifest is the one place the name -> file mapping lives, and the agent reads it here. Each
WebUI client turns the file into what its API takes (A1111: the checkpoint whose file it is;
ComfyUI: `ckpt_name` relative to its checkpoints folder).

The manifest is re-read when a name is missing, so a model the sync adds later is found
without restarting the agent.
"""

from __future__ import annotations

import json
from pathlib import Path

from .errors import PermanentJobError, RetryableJobError

# Same file name as sdfleet_webui/manifest.py MANIFEST_NAME (tests/batch pin the two together).
MANIFEST_NAME = ".sdfleet-manifest.json"


class ModelCatalog:
    def __init__(self, root: str | Path):
        self.path = Path(root) / MANIFEST_NAME
        self._data: dict | None = None

    def _load(self) -> dict:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            raise RetryableJobError(f"the model store has no manifest yet ({self.path}): the "
                                    "model sync has not run") from None
        except (OSError, ValueError) as error:
            raise RetryableJobError(f"model manifest {self.path} unreadable: {error}") from None
        if not isinstance(data, dict) or not isinstance(data.get("models"), dict):
            raise RetryableJobError(f"model manifest {self.path} has no models")
        return data

    def _entries(self, refresh: bool) -> dict:
        if refresh or self._data is None:
            self._data = self._load()
        return self._data

    def checkpoint_file(self, name: str) -> str:
        """The store-relative file of the checkpoint the config calls `name`."""
        for refresh in (False, True):
            entry = self._entries(refresh)["models"].get(name)
            if isinstance(entry, dict) and entry.get("kind") == "checkpoint" and entry.get("path"):
                return str(entry["path"])
        names = sorted(n for n, e in self._data["models"].items()
                       if isinstance(e, dict) and e.get("kind") == "checkpoint")
        raise PermanentJobError(f"model {name!r} is not a checkpoint of this stack's model store "
                                f"(exact config names only); available: "
                                f"{', '.join(names) or 'none'}")

    def default_checkpoint(self) -> tuple[str, str] | None:
        """(config name, file) of the store's default checkpoint, if the config names one."""
        value = self._entries(False).get("defaultCheckpoint")
        if isinstance(value, dict) and value.get("name") and value.get("path"):
            return str(value["name"]), str(value["path"])
        return None
