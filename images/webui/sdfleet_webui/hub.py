"""Hugging Face sources, through huggingface_hub (pinned in requirements.txt).

- Metadata: ``get_hf_file_metadata(hf_hub_url(repo, file, revision, endpoint))``, a HEAD on
  ``{HF_ENDPOINT}/<repo>/resolve/<revision>/<file>`` that follows redirects only while they
  stay on the Hub and sends the token only there (huggingface_hub utils/_http.py,
  ``_httpx2_follow_hub_redirects_with_backoff``). It gives the file's etag (for an LFS file,
  ``X-Linked-Etag``: its SHA-256), its size (``X-Linked-Size``), the commit (``X-Repo-Commit``)
  and where the bytes are (``Location``, a signed CDN URL).
- Bytes: ``file_download.http_get`` from that location, resuming at the size of our partial
  file (``Range``) and, within one call, again after a dropped connection. The token goes
  with the GET only when the bytes are on the Hub itself; a CDN URL carries its own signature.

What stays ours (download.py): the partial file beside its final name and what it is part of
(here the Hub's etag: a partial of another etag is discarded, so a file changed on the Hub is
never spliced), size and SHA-256 verification, the atomic rename, progress log lines, and one
error per model that names it and the reason. ``hf_hub_download`` itself is not used: version
2.x downloads into a process-unique temporary file it deletes on failure
(file_download.py ``_download_to_tmp_and_move``), so a download interrupted by a Job restart
would start again from zero; a checkpoint is gigabytes.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx2
from huggingface_hub import get_hf_file_metadata, hf_hub_url
from huggingface_hub.errors import HfHubHTTPError
from huggingface_hub.file_download import http_get
from huggingface_hub.utils import disable_progress_bars

from .httpclient import FetchError, RetryPolicy, host_of, permanent_failure, retry_delay
from .logs import log, redact_url
from .manifest import VerifiedFile
from .modellist import ModelSpec
from .parts import PartState, Progress, verify_and_place
from .sources import SHA256_RE, DownloadPlan, Endpoints, agree, safe_filename

USER_AGENT = "sdfleet-model-fetcher/1"
# Our progress lines replace huggingface_hub's tqdm bars (a Job's log is not a terminal).
disable_progress_bars()


def _status(error: HfHubHTTPError) -> int | None:
    return error.response.status_code if error.response is not None else None


def resolve_huggingface(spec: ModelSpec, endpoints: Endpoints, policy: RetryPolicy) -> DownloadPlan:
    url = hf_hub_url(spec.repo, spec.file, revision=spec.revision, endpoint=endpoints.hf_endpoint)
    what = f"Hugging Face file {spec.repo}/{spec.file}@{spec.revision}"
    try:
        # token=False when we have none: never an ambient token from the Job's home folder.
        meta = get_hf_file_metadata(url, token=endpoints.hf_token or False,
                                    endpoint=endpoints.hf_endpoint, user_agent=USER_AGENT,
                                    timeout=policy.connect_timeout, retry_on_errors=True)
    except HfHubHTTPError as error:
        status = _status(error)
        cause = permanent_failure(status, what, endpoints.token_hint(url)) if status else None
        raise FetchError(spec.name, cause or f"{what}: metadata request failed "
                                             f"({'HTTP ' + str(status) if status else error})") from None
    except (httpx2.HTTPError, OSError) as error:
        raise FetchError(spec.name, f"{what}: {redact_url(url)} unreachable "
                                    f"({type(error).__name__})") from None
    etag = (meta.etag or "").lower()
    location = meta.location or url
    # The token belongs to the Hub: it goes with the GET only if the bytes are served there.
    on_hub = host_of(location) == host_of(endpoints.hf_endpoint)
    headers = {"Authorization": f"Bearer {endpoints.hf_token}"} if on_hub and endpoints.hf_token else {}
    return DownloadPlan(name=spec.name, kind=spec.kind, url=location, source_key=spec.source_key,
                        filename=safe_filename(spec.file),
                        sha256=agree(spec, etag if SHA256_RE.match(etag) else None),
                        size=meta.size, headers=headers, etag=etag or None, via="huggingface",
                        revision=meta.commit_hash)


class _CountingWriter:
    """The partial file as http_get writes it, feeding our progress lines."""

    def __init__(self, handle, progress):
        self.handle, self.progress = handle, progress

    def write(self, data: bytes) -> int:
        written = self.handle.write(data)
        self.progress.update(len(data))
        return written

    def seek(self, *args):
        return self.handle.seek(*args)

    def tell(self) -> int:
        return self.handle.tell()

    def truncate(self, *args):
        return self.handle.truncate(*args)


def download_from_hub(plan: DownloadPlan, root: Path, policy: RetryPolicy,
                      progress_seconds: float = 5.0, sleep=time.sleep) -> VerifiedFile:
    folder = root / plan.folder
    folder.mkdir(parents=True, exist_ok=True)
    part = folder / f".{plan.name}.sdfleet-part"
    meta_path = folder / f".{plan.name}.sdfleet-part.json"
    state = PartState.load(meta_path, plan.source_key) if part.exists() else None
    if state is not None and state.validator != plan.etag:
        log("download-restart", level="warning", model=plan.name,
            cause="the file changed on the Hub since the partial download (etag differs)")
        state = None
    if state is None:
        part.unlink(missing_ok=True)
        state = PartState(meta_path, plan.source_key)
    state.filename, state.total, state.validator = plan.filename, plan.size, plan.etag
    state.save()
    attempt = 0
    while True:
        attempt += 1
        have = part.stat().st_size if part.exists() else 0
        if plan.size is not None and have > plan.size:
            part.unlink()
            have = 0
        log("download-resume" if have else "download-start", model=plan.name,
            url=redact_url(plan.url), offset=have, bytes=plan.size)
        progress = Progress(plan.name, plan.size, have, progress_seconds)
        retry_after = None
        try:
            with open(part, "ab") as out:
                http_get(plan.url, _CountingWriter(out, progress), resume_size=have,
                         headers={**plan.headers, "User-Agent": USER_AGENT},
                         expected_size=plan.size, displayed_filename=plan.name)
                out.flush()
                os.fsync(out.fileno())
            break
        except HfHubHTTPError as error:
            status = _status(error)
            cause = permanent_failure(status, f"download from {redact_url(plan.url)}",
                                      "the Hugging Face token was not accepted or is missing "
                                      "(HF_TOKEN / HF_TOKEN_FILE)") if status else None
            if cause:
                raise FetchError(plan.name, cause) from None
            retry_after = error.response.headers.get("Retry-After") if error.response is not None else None
            last = f"HTTP {status}"
        except (httpx2.HTTPError, OSError) as error:   # OSError: http_get's size check
            last = f"{type(error).__name__}: {str(error)[:160]}"
        finally:
            progress.close()
        if attempt >= policy.attempts:
            raise FetchError(plan.name, f"download interrupted {attempt} times, giving up "
                                        f"(last: {last})")
        delay = retry_delay(attempt, policy, retry_after)
        log("download-interrupted", level="warning", model=plan.name, cause=last,
            attempt=attempt, delay=round(delay, 2))
        sleep(delay)
    return verify_and_place(plan, part, meta_path, state, None)
