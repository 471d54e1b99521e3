"""Resumable, verified downloads into the models store.

The bytes go to ``<folder>/.<model>.sdfleet-part``; a small ``.json`` beside it remembers
the source, the final file name, the total size and the server's validator (strong ETag
or Last-Modified). A retry or a later run resumes with ``Range: bytes=<have>-`` and
``If-Range: <validator>``, so a file that changed on the server starts over instead of
being spliced. Only a file whose size and SHA-256 check out is renamed (atomically) to
its final name; a wrong file is deleted, never left in place.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import tempfile
import time
from email.message import Message
from pathlib import Path
from urllib.parse import urlsplit

import requests

from .httpclient import FetchError, RetryPolicy, permanent_failure, retry_delay, send
from .logs import log, redact_url
from .manifest import VerifiedFile
from .parts import CHUNK, PartState, Progress, sha256_of, verify_and_place  # noqa: F401
from .sources import DownloadPlan, Endpoints, safe_filename

# Network reads are smaller: bytes buffered in a read that a dropped connection interrupts
# are lost, so small reads keep the resumable part close to what actually arrived.
NET_CHUNK = 64 * 1024


class _Incomplete(Exception):
    """The connection ended before the promised bytes arrived (resumable)."""


def content_disposition_filename(header: str | None) -> str | None:
    if not header:
        return None
    message = Message()
    message["content-disposition"] = header
    name = message.get_filename()
    return safe_filename(name) if name else None


def download_file(plan: DownloadPlan, root: Path, session: requests.Session,
                  endpoints: Endpoints, policy: RetryPolicy, progress_seconds: float = 5.0,
                  sleep=time.sleep) -> VerifiedFile:
    folder = root / plan.folder
    folder.mkdir(parents=True, exist_ok=True)
    part = folder / f".{plan.name}.sdfleet-part"
    meta_path = folder / f".{plan.name}.sdfleet-part.json"
    state = PartState.load(meta_path, plan.source_key) if part.exists() else None
    if state is None:
        part.unlink(missing_ok=True)
        state = PartState(meta_path, plan.source_key)
    hasher, hashed = None, -1
    attempt = 0
    while True:
        attempt += 1
        have = part.stat().st_size if part.exists() else 0
        headers = dict(plan.headers)
        if have:
            headers["Range"] = f"bytes={have}-"
            if state.validator:
                headers["If-Range"] = state.validator
        try:
            response = send(session, "GET", plan.url, model=plan.name, what="download",
                            policy=policy, sleep=sleep, headers=headers, stream=True)
            with response:
                status = response.status_code
                cause = permanent_failure(status, f"download from {redact_url(plan.url)}",
                                          endpoints.token_hint(plan.url))
                if cause:
                    raise FetchError(plan.name, cause)
                if status == 416:
                    if have and state.total == have:
                        break  # already complete; go verify
                    part.unlink(missing_ok=True)
                    raise _Incomplete("range not satisfiable; starting over")
                if status == 206:
                    match = re.match(r"bytes (\d+)-\d+/(\d+|\*)", response.headers.get("Content-Range", ""))
                    if not match or int(match.group(1)) != have:
                        part.unlink(missing_ok=True)
                        raise _Incomplete("server answered a different range; starting over")
                    total = int(match.group(2)) if match.group(2) != "*" else None
                elif status == 200:
                    if have:
                        log("download-restart", level="warning", model=plan.name,
                            cause="server sent the whole file (changed or no Range support)")
                        part.unlink(missing_ok=True)
                        have = 0
                    length = response.headers.get("Content-Length")
                    total = int(length) if length and length.isdigit() else None
                else:
                    raise FetchError(plan.name, f"download: unexpected HTTP {status}")
                state.filename = (state.filename or plan.filename
                                  or content_disposition_filename(response.headers.get("Content-Disposition"))
                                  or safe_filename(urlsplit(response.url).path) or plan.name)
                etag = response.headers.get("ETag", "")
                state.validator = (etag if etag and not etag.startswith("W/")
                                   else response.headers.get("Last-Modified"))
                state.total = total
                state.save()
                if hasher is None or hashed != have:
                    hasher = sha256_of(part, have) if have else hashlib.sha256()
                    hashed = have
                if have == 0:
                    log("download-start", model=plan.name, url=redact_url(plan.url), bytes=total)
                else:
                    log("download-resume", model=plan.name, offset=have, bytes=total)
                progress = Progress(plan.name, total, have, progress_seconds)
                try:
                    with open(part, "ab") as out:
                        for chunk in response.iter_content(NET_CHUNK):
                            out.write(chunk)
                            hasher.update(chunk)
                            hashed += len(chunk)
                            progress.update(len(chunk))
                        out.flush()
                        os.fsync(out.fileno())
                finally:
                    progress.close()
                if total is not None and hashed < total:
                    raise _Incomplete(f"connection closed at {hashed} of {total} bytes")
            break
        except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError,
                _Incomplete) as exc:
            if attempt >= policy.attempts:
                raise FetchError(plan.name, f"download interrupted {attempt} times, giving up "
                                            f"(last: {exc})") from None
            delay = retry_delay(attempt, policy)
            log("download-interrupted", level="warning", model=plan.name, cause=str(exc)[:200],
                attempt=attempt, delay=round(delay, 2))
            sleep(delay)
    return verify_and_place(plan, part, meta_path, state, hasher if hashed == part.stat().st_size else None)


def adopt_existing(plan: DownloadPlan, root: Path) -> VerifiedFile | None:
    """A file already at the final name counts only if its SHA-256 matches the known one."""
    if not plan.sha256 or not plan.filename:
        return None
    final = root / plan.folder / plan.filename
    if not final.is_file() or final.is_symlink():
        return None
    if plan.size is not None and final.stat().st_size != plan.size:
        return None
    if sha256_of(final).hexdigest() != plan.sha256:
        log("existing-file-rejected", level="warning", model=plan.name, path=str(final),
            cause="SHA-256 differs; downloading again")
        return None
    return VerifiedFile(name=plan.name, kind=plan.kind, path=f"{plan.folder}/{plan.filename}",
                        size=final.stat().st_size, sha256=plan.sha256, source=plan.source_key)


def clone_extension(plan: DownloadPlan, root: Path, timeout: float = 600.0) -> VerifiedFile:
    """An extension is a git repository: cloned into a temporary folder, then renamed."""
    folder = root / plan.folder
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / (plan.filename or plan.name)
    tmp = Path(tempfile.mkdtemp(prefix=f".{plan.name}.", suffix=".sdfleet-part", dir=folder))
    env = dict(os.environ, GIT_TERMINAL_PROMPT="0")
    try:
        result = subprocess.run(["git", "clone", "--quiet", plan.url, str(tmp / "repo")], env=env,
                                capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            raise FetchError(plan.name, f"git clone of {redact_url(plan.url)} failed: "
                                        f"{result.stderr.strip()[-300:]}")
        checkout = subprocess.run(["git", "-C", str(tmp / "repo"), "checkout", "--quiet", "--detach",
                                   plan.revision], capture_output=True, text=True, env=env)
        if checkout.returncode != 0:
            raise FetchError(plan.name, f"commit {plan.revision} not found in {redact_url(plan.url)}")
        commit = subprocess.run(["git", "-C", str(tmp / "repo"), "rev-parse", "HEAD"],
                                capture_output=True, text=True, check=True).stdout.strip()
        if final.exists():
            subprocess.run(["rm", "-rf", "--", str(final)], check=True)
        os.replace(tmp / "repo", final)
    finally:
        subprocess.run(["rm", "-rf", "--", str(tmp)], check=False)
    log("extension-cloned", model=plan.name, path=str(final), commit=commit)
    return VerifiedFile(name=plan.name, kind="extension", path=f"{plan.folder}/{final.name}",
                        size=0, sha256=commit, source=plan.source_key)
