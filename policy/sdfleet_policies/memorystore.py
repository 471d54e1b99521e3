"""Memorystore (Redis instance, Redis cluster, Memorystore instance): AUTH and in-transit
encryption on."""

from __future__ import annotations

from typing import Any, Iterable

from .define import resource_policy
from .inputs import read

REDIS_INSTANCE = "gcp:redis/instance:Instance"
REDIS_CLUSTER = "gcp:redis/cluster:Cluster"
MEMORYSTORE_INSTANCE = "gcp:memorystore/instance:Instance"


def _check_redis(type_: str, props: Any, _args) -> Iterable[str]:
    if type_ == REDIS_INSTANCE:
        if read(props, "authEnabled", default=False) is not True:
            yield "authEnabled must be true (Redis AUTH; the provider default is off)"
        mode = read(props, "transitEncryptionMode", default="DISABLED")
        if mode != "SERVER_AUTHENTICATION":
            yield f"transitEncryptionMode is {mode!r}; in-transit encryption needs SERVER_AUTHENTICATION"
    elif type_ == MEMORYSTORE_INSTANCE:
        auth = read(props, "authorizationMode", default="AUTH_DISABLED")
        if auth in ("AUTH_DISABLED", None):
            yield f"authorizationMode is {auth!r}; use IAM_AUTH"
        mode = read(props, "transitEncryptionMode", default="TRANSIT_ENCRYPTION_DISABLED")
        if mode != "SERVER_AUTHENTICATION":
            yield f"transitEncryptionMode is {mode!r}; in-transit encryption needs SERVER_AUTHENTICATION"
    elif type_ == REDIS_CLUSTER:
        auth = read(props, "authorizationMode", default="AUTH_MODE_DISABLED")
        if auth != "AUTH_MODE_IAM_AUTH":
            yield f"authorizationMode is {auth!r}; use AUTH_MODE_IAM_AUTH"
        mode = read(props, "transitEncryptionMode", default="TRANSIT_ENCRYPTION_MODE_DISABLED")
        if mode != "TRANSIT_ENCRYPTION_MODE_SERVER_AUTHENTICATION":
            yield (f"transitEncryptionMode is {mode!r}; in-transit encryption needs "
                   "TRANSIT_ENCRYPTION_MODE_SERVER_AUTHENTICATION")


POLICIES = [
    resource_policy(
        "memorystore-auth-and-tls",
        "Memorystore has AUTH on and in-transit encryption on.",
        (REDIS_INSTANCE, MEMORYSTORE_INSTANCE, REDIS_CLUSTER), _check_redis),
]
