"""Fetching img2img init images, only from where the stack allows.

`s3://<the stack's bucket>/uploads/<client>/<key>` (the submitting client's own upload prefix,
layout.py) is read with the pod's own S3 permissions;
`https://<allowed host>/...` is fetched without following redirects (a redirect could point
into the VPC) and with a size cap. The submit function enforces the same rule; the agent
enforces it again because a queue is not a trust boundary.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import requests
from botocore.exceptions import BotoCoreError, ClientError

from .errors import PermanentJobError, RetryableJobError
from .layout import upload_prefix


class InitImageFetcher:
    def __init__(self, s3_client, bucket: str, allowed_hosts: tuple[str, ...], max_bytes: int,
                 timeout: float = 30.0):
        self.s3, self.bucket = s3_client, bucket
        self.allowed_hosts, self.max_bytes, self.timeout = allowed_hosts, max_bytes, timeout

    def fetch_all(self, job) -> list[bytes]:
        return [self.fetch(link, job.client) for link in job.init_images]

    def fetch(self, link: str, client: str) -> bytes:
        parts = urlsplit(link)
        key = parts.path.lstrip("/")
        if parts.scheme == "s3" and parts.netloc == self.bucket:
            prefix = upload_prefix(client)
            if key.startswith(prefix) and len(key) > len(prefix) and ".." not in key.split("/"):
                return self._from_s3(key, link)
            raise PermanentJobError(f"init image {link[:200]!r} is not in the client's own "
                                    f"upload prefix s3://{self.bucket}/{prefix}")
        if (parts.scheme == "https" and parts.hostname in self.allowed_hosts
                and parts.username is None and parts.port in (None, 443)):
            return self._from_https(link)
        raise PermanentJobError(f"init image {link[:200]!r} is not from an allowed host "
                                f"or the stack's bucket")

    def _from_s3(self, key: str, link: str) -> bytes:
        try:
            head = self.s3.head_object(Bucket=self.bucket, Key=key)
            if head["ContentLength"] > self.max_bytes:
                raise PermanentJobError(f"init image {link} is larger than {self.max_bytes} bytes")
            return self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            if code in ("404", "NoSuchKey", "403", "AccessDenied"):
                raise PermanentJobError(f"init image {link} cannot be read ({code})") from None
            raise RetryableJobError(f"init image {link}: S3 error {code}") from None
        except BotoCoreError as error:
            raise RetryableJobError(f"init image {link}: {type(error).__name__}") from None

    def _from_https(self, link: str) -> bytes:
        try:
            with requests.get(link, timeout=self.timeout, stream=True,
                              allow_redirects=False) as response:
                if 400 <= response.status_code < 500 or 300 <= response.status_code < 400:
                    raise PermanentJobError(f"init image {link[:200]} answered "
                                            f"{response.status_code}")
                if response.status_code >= 500:
                    raise RetryableJobError(f"init image {link[:200]} answered "
                                            f"{response.status_code}")
                data = bytearray()
                for chunk in response.iter_content(64 * 1024):
                    data += chunk
                    if len(data) > self.max_bytes:
                        raise PermanentJobError(f"init image {link[:200]} is larger than "
                                                f"{self.max_bytes} bytes")
                return bytes(data)
        except requests.RequestException as error:
            raise RetryableJobError(f"init image {link[:200]}: {type(error).__name__}") from None
