"""The model fetcher: makes every model of the list present and verified under a root.

    python -m sdfleet_webui.fetch --models-file /etc/sdfleet/models.json --root /models

For each model (in parallel, at most ``--parallel`` at a time): if the manifest says it is
verified and the file is still there, nothing else happens (no network at all);
otherwise resolve it (CivitAI API, Hugging Face headers), adopt a matching file already in
place, or download, verify and rename it. Exit status: 0 when every required model is
present (optional failures are reported, not fatal), 1 when a required model or the
named default checkpoint is missing, 2 when the configuration itself is unusable.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import requests

from . import settings as st
from .download import adopt_existing, clone_extension, download_file, sha256_of
from .httpclient import FetchError, RetryPolicy
from .hub import download_from_hub, resolve_huggingface
from .logs import log
from .manifest import Manifest, verified_entry
from .modellist import KIND_FOLDERS, ModelList, ModelListError, ModelSpec, load_model_list
from .sources import Endpoints, resolve_direct


@dataclass
class FetchSettings:
    root: Path
    parallel: int = 2
    offline: bool = False
    verify_hashes: bool = False
    progress_seconds: float = 5.0
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    endpoints: Endpoints = field(default_factory=Endpoints)

    @classmethod
    def from_env(cls, root: Path | None = None, env: dict | None = None,
                 **overrides) -> "FetchSettings":
        """From the environment (names, defaults and limits: settings.FetcherSettings);
        ``root`` and keyword overrides (the command line's) win over it."""
        s = st.FetcherSettings.from_env(env)
        policy = RetryPolicy(attempts=s.attempts, backoff_seconds=s.backoff_seconds,
                             max_backoff_seconds=s.max_backoff_seconds,
                             connect_timeout=s.connect_timeout, read_timeout=s.read_timeout)
        endpoints = Endpoints(civitai_api_base=s.civitai_api_base, hf_endpoint=s.hf_endpoint,
                              civitai_token=s.civitai_secret(), hf_token=s.hf_secret())
        values = dict(root=root or s.models_root, policy=policy, endpoints=endpoints,
                      parallel=s.parallel, offline=s.offline, progress_seconds=s.progress_seconds)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


@dataclass
class Outcome:
    name: str
    required: bool
    status: str  # verified | downloaded | adopted | failed
    kind: str | None = None
    path: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status != "failed"


@dataclass
class Report:
    outcomes: list[Outcome]
    default_checkpoint: str | None
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


class Fetcher:
    def __init__(self, fetch_settings: FetchSettings, sleep=time.sleep):
        self.settings = fetch_settings
        self.manifest = Manifest(fetch_settings.root)
        self.sleep = sleep
        self._local = threading.local()
        self._claimed: dict[str, str] = {}
        self._claim_lock = threading.Lock()

    def _session(self) -> requests.Session:
        if not hasattr(self._local, "session"):
            self._local.session = requests.Session()
            self._local.session.headers["User-Agent"] = "sdfleet-model-fetcher/1"
        return self._local.session

    def fetch_one(self, spec: ModelSpec) -> Outcome:
        try:
            return self._fetch(spec)
        except FetchError as exc:
            log("model-failed", level="error", model=spec.name, cause=exc.cause, required=spec.required)
            return Outcome(spec.name, spec.required, "failed", spec.kind, error=str(exc))
        except OSError as exc:
            log("model-failed", level="error", model=spec.name, cause=str(exc), required=spec.required)
            return Outcome(spec.name, spec.required, "failed", spec.kind,
                           error=f"model {spec.name!r}: {exc.strerror or exc} ({exc.filename or ''})")

    def _fetch(self, spec: ModelSpec) -> Outcome:
        entry, reason = verified_entry(self.manifest, spec.name, spec.source_key, spec.sha256)
        if entry is not None and self.settings.verify_hashes and entry.kind != "extension":
            if sha256_of(self.manifest.root / entry.path).hexdigest() != entry.sha256:
                entry, reason = None, "its content no longer matches the verified SHA-256"
        if entry is not None:
            log("model-verified", model=spec.name, path=entry.path, network=False)
            return Outcome(spec.name, spec.required, "verified", entry.kind, entry.path)
        if self.settings.offline:
            raise FetchError(spec.name, f"not verified locally ({reason}) and offline mode "
                                        f"forbids downloading")
        log("model-needed", model=spec.name, reason=reason)
        plan = (resolve_huggingface(spec, self.settings.endpoints, self.settings.policy)
                if spec.source == "huggingface" else
                resolve_direct(spec, self._session(), self.settings.endpoints, self.settings.policy,
                               self.sleep))
        if plan.filename:
            self._claim(spec.name, f"{plan.folder}/{plan.filename}")
        if plan.kind == "extension":
            verified, status = clone_extension(plan, self.settings.root), "downloaded"
        else:
            verified = adopt_existing(plan, self.settings.root)
            status = "adopted"
            if verified is None:
                verified = (download_from_hub(plan, self.settings.root, self.settings.policy,
                                              self.settings.progress_seconds, self.sleep)
                            if plan.via == "huggingface" else
                            download_file(plan, self.settings.root, self._session(),
                                          self.settings.endpoints, self.settings.policy,
                                          self.settings.progress_seconds, self.sleep))
                status = "downloaded"
            self._claim(spec.name, verified.path)
        self.manifest.record(verified)
        return Outcome(spec.name, spec.required, status, verified.kind, verified.path)

    def _claim(self, name: str, path: str) -> None:
        with self._claim_lock:
            owner = self._claimed.setdefault(path, name)
        if owner != name:
            raise FetchError(name, f"resolves to {path}, which model {owner!r} already uses; "
                                   f"two models cannot share one file")

    def run(self, model_list: ModelList) -> Report:
        # Every kind's folder exists, empty or not: the pods see the store read-only, and a
        # framework that makes its folder at start (A1111's Lora extension: os.makedirs of
        # --lora-dir) fails there when the folder is missing.
        for folder in KIND_FOLDERS.values():
            (self.settings.root / folder).mkdir(parents=True, exist_ok=True)
        with ThreadPoolExecutor(max_workers=self.settings.parallel,
                                thread_name_prefix="fetch") as pool:
            outcomes = list(pool.map(self.fetch_one, model_list.models))
        default, problem = choose_default_checkpoint(model_list, outcomes)
        self.manifest.set_default_checkpoint(default.name if default else None,
                                             default.path if default else None)
        problems = [o.error for o in outcomes if o.required and not o.ok]
        if problem:
            problems.append(problem)
        return Report(outcomes, default.name if default else None, problems)


def choose_default_checkpoint(model_list: ModelList, outcomes: list[Outcome]) -> tuple[Outcome | None, str | None]:
    """The rule: the checkpoint the config names; without a name, the only checkpoint there is.

    Never "whichever came last": with several checkpoints and none named, no default is
    set and the WebUI keeps its own choice (a warning says so).
    """
    by_name = {o.name: o for o in outcomes}
    if model_list.default_checkpoint:
        chosen = by_name.get(model_list.default_checkpoint)
        if chosen is None or not chosen.ok:
            cause = chosen.error if chosen else "it is not in the model list"
            return None, f"default checkpoint {model_list.default_checkpoint!r} is not available: {cause}"
        if chosen.kind != "checkpoint":
            return None, (f"default checkpoint {chosen.name!r} turned out to be a {chosen.kind}, "
                          f"not a checkpoint")
        return chosen, None
    checkpoints = [o for o in outcomes if o.ok and o.kind == "checkpoint"]
    if len(checkpoints) == 1:
        return checkpoints[0], None
    if len(checkpoints) > 1:
        log("no-default-checkpoint", level="warning",
            cause="several checkpoints and no defaultCheckpoint (or SDFLEET_DEFAULT_CHECKPOINT)",
            checkpoints=[o.name for o in checkpoints])
    return None, None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sdfleet_webui.fetch", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models-file", help="model list JSON (default: SDFLEET_MODELS_JSON, "
                                              "then /etc/sdfleet/models.json)")
    parser.add_argument("--root", default=None, help="models root (default SDFLEET_MODELS_ROOT or /models)")
    parser.add_argument("--parallel", type=int, default=None, help="downloads at a time")
    parser.add_argument("--offline", action="store_true", default=None,
                        help="never use the network: only check what is verified")
    parser.add_argument("--verify-hashes", action="store_true", default=None,
                        help="re-hash verified files instead of trusting size + manifest")
    args = parser.parse_args(argv)
    try:
        fetch_settings = FetchSettings.from_env(Path(args.root) if args.root else None, parallel=args.parallel, offline=args.offline,
                                                verify_hashes=args.verify_hashes)
        model_list = load_model_list(args.models_file)
    except (ModelListError, st.SettingError) as exc:
        log("config-error", level="error", cause=str(exc))
        print(f"error: {exc}", file=sys.stderr)
        return 2
    started = time.monotonic()
    report = Fetcher(fetch_settings).run(model_list)
    for outcome in report.outcomes:
        log("model-summary", model=outcome.name, status=outcome.status, required=outcome.required,
            path=outcome.path, error=outcome.error)
    log("fetch-done", ok=report.ok, models=len(report.outcomes),
        default_checkpoint=report.default_checkpoint, seconds=round(time.monotonic() - started, 2),
        problems=report.problems)
    for problem in report.problems:
        print(f"error: {problem}", file=sys.stderr)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
