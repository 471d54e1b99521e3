"""From a model-list entry to a download plan: where the bytes are and what they must be.

- CivitAI: ``GET {CIVITAI_API_BASE}/v1/model-versions/<id>``; the primary file gives the
  file name, ``hashes.SHA256`` and ``downloadUrl``; the model's ``type`` decides the
  folder unless the entry names a ``kind``.
- Hugging Face: through huggingface_hub (hub.py): the file's metadata (an LFS file's etag
  is its SHA-256, plus its size and where the bytes are) and its download.
- Plain URL: the name comes from Content-Disposition at download time; a Hugging Face
  style URL still gives its hash through the same headers.

A hash the config names must agree with the one the source gives.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from urllib.parse import unquote, urlsplit

import requests

from .httpclient import FetchError, RetryPolicy, auth_headers_for, permanent_failure, send
from .modellist import KIND_FOLDERS, ModelSpec

# CivitAI model types -> our kinds (folders).
CIVITAI_TYPES = {
    "checkpoint": "checkpoint", "lora": "lora", "locon": "lora", "dora": "lora",
    "lycoris": "lora", "vae": "vae", "controlnet": "controlnet",
    "textualinversion": "embedding", "upscaler": "upscaler",
}
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


@dataclass
class Endpoints:
    civitai_api_base: str = "https://civitai.com/api"
    hf_endpoint: str = "https://huggingface.co"
    civitai_token: str | None = field(default=None, repr=False)
    hf_token: str | None = field(default=None, repr=False)

    def tokens(self) -> dict[str, str | None]:
        return {self.civitai_api_base: self.civitai_token, self.hf_endpoint: self.hf_token}

    def token_hint(self, url: str) -> str:
        from .httpclient import host_of
        if host_of(url) == host_of(self.civitai_api_base):
            return ("set CIVITAI_TOKEN (or CIVITAI_TOKEN_FILE) to an API key allowed to download it"
                    if not self.civitai_token else "the CivitAI token was not accepted")
        if host_of(url) == host_of(self.hf_endpoint):
            return ("the repository may be gated or private: set HF_TOKEN (or HF_TOKEN_FILE)"
                    if not self.hf_token else "the Hugging Face token was not accepted")
        return "the server needs credentials sdfleet does not send to other hosts"


@dataclass
class DownloadPlan:
    name: str
    kind: str
    url: str
    source_key: str
    filename: str | None = None
    sha256: str | None = None
    size: int | None = None
    revision: str | None = None  # extensions: the pinned commit; Hugging Face: the commit
    headers: dict[str, str] = field(default_factory=dict, repr=False)
    etag: str | None = None       # Hugging Face: the file's etag (a partial of another is dropped)
    via: str = "http"             # "http" (download.py) or "huggingface" (hub.py)

    @property
    def folder(self) -> str:
        return KIND_FOLDERS[self.kind]


def safe_filename(raw: str | None) -> str | None:
    """A bare file name (no folders, no leading dots), or None if nothing usable remains."""
    if not raw:
        return None
    name = PurePosixPath(unquote(raw).replace("\\", "/")).name
    name = re.sub(r"[^A-Za-z0-9._+ ()\[\]-]", "_", name).strip().lstrip(".")
    return name[:200] or None


def hash_from_headers(headers) -> tuple[str | None, int | None]:
    etag = headers.get("X-Linked-Etag") or headers.get("ETag") or ""
    etag = etag.strip()
    if etag.startswith("W/"):
        etag = ""
    etag = etag.strip('"').lower()
    size = headers.get("X-Linked-Size")
    return (etag if SHA256_RE.match(etag) else None,
            int(size) if size and size.isdigit() else None)


def agree(spec: ModelSpec, given: str | None) -> str | None:
    if spec.sha256 and given and spec.sha256 != given:
        raise FetchError(spec.name, f"the config's sha256 {spec.sha256} differs from the one the "
                                    f"source publishes ({given}); refusing to guess which is right")
    return spec.sha256 or given


def resolve_civitai(spec: ModelSpec, session, endpoints: Endpoints, policy: RetryPolicy,
                    sleep) -> DownloadPlan:
    url = f"{endpoints.civitai_api_base.rstrip('/')}/v1/model-versions/{spec.civitai_version_id}"
    what = f"CivitAI model version {spec.civitai_version_id}"
    response = send(session, "GET", url, model=spec.name, what=what, policy=policy, sleep=sleep,
                    headers=auth_headers_for(url, endpoints.tokens()))
    cause = permanent_failure(response.status_code, what, endpoints.token_hint(url))
    if cause or response.status_code != 200:
        raise FetchError(spec.name, cause or f"{what}: unexpected HTTP {response.status_code}")
    try:
        version = response.json()
        files = version["files"]
        primary = next((f for f in files if f.get("primary")), None) or files[0]
        download_url = primary["downloadUrl"]
    except (ValueError, KeyError, IndexError, TypeError):
        raise FetchError(spec.name, f"{what}: the API answer has no downloadable file") from None
    kind = spec.kind
    if kind is None:
        civitai_type = str((version.get("model") or {}).get("type", ""))
        kind = CIVITAI_TYPES.get(civitai_type.lower())
        if kind is None:
            raise FetchError(spec.name, f"{what} is of CivitAI type {civitai_type!r}, which has no "
                                        f"folder; set 'kind' to one of {list(KIND_FOLDERS)}")
    sha = str((primary.get("hashes") or {}).get("SHA256") or "").lower() or None
    return DownloadPlan(name=spec.name, kind=kind, url=download_url, source_key=spec.source_key,
                        filename=safe_filename(primary.get("name")), sha256=agree(spec, sha),
                        headers=auth_headers_for(download_url, endpoints.tokens()))


def resolve_by_headers(spec: ModelSpec, url: str, session, endpoints: Endpoints,
                       policy: RetryPolicy, sleep, filename: str | None) -> DownloadPlan:
    headers = auth_headers_for(url, endpoints.tokens())
    sha, size = None, None
    try:
        head = send(session, "HEAD", url, model=spec.name, what="metadata request", policy=policy,
                    sleep=sleep, headers=headers, allow_redirects=False)
        if head.status_code < 400:
            sha, size = hash_from_headers(head.headers)
    except FetchError:
        pass  # HEAD is only a hint; the download itself reports real failures
    return DownloadPlan(name=spec.name, kind=spec.kind, url=url, source_key=spec.source_key,
                        filename=filename, sha256=agree(spec, sha), size=size, headers=headers)


def resolve_direct(spec: ModelSpec, session: requests.Session, endpoints: Endpoints,
                   policy: RetryPolicy, sleep) -> DownloadPlan:
    """Where a CivitAI, URL or extension model comes from (Hugging Face files: hub.py)."""
    if spec.source == "civitai":
        return resolve_civitai(spec, session, endpoints, policy, sleep)
    if spec.kind == "extension":
        return DownloadPlan(name=spec.name, kind="extension", url=spec.url,
                            source_key=spec.source_key, revision=spec.revision,
                            filename=safe_filename(urlsplit(spec.url).path.removesuffix(".git")))
    return resolve_by_headers(spec, spec.url, session, endpoints, policy, sleep, None)
