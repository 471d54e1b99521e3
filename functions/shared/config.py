"""Configuration of the functions, read once from environment variables.

Every variable is listed in functions/README.md. A missing or malformed value is a
`ConfigError` naming the variable, raised at cold start, so a bad deployment fails loudly
instead of answering with half a configuration.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from . import env as names
from .env import GROUP_CACHE_SECONDS, GROUPS_API_URL

DEFAULT_IAP_CERTS_URL = "https://www.gstatic.com/iap/verify/public_key-jwk"
DEFAULT_OIDC_CERTS_URL = "https://www.googleapis.com/oauth2/v3/certs"


class ConfigError(ValueError):
    pass


def _str(env, name: str, default: str | None = None) -> str:
    value = env.get(name, default)
    if value is None or value == "":
        raise ConfigError(f"environment variable {name} is required")
    return value


def _int(env, name: str, default: int | None, minimum: int = 0) -> int:
    """An integer variable; `default` None: the stack always sets it (from the stack config,
    the one place its default lives), so its absence is a misconfiguration."""
    raw = env.get(name)
    if raw in (None, ""):
        if default is None:
            raise ConfigError(f"environment variable {name} is required (the stack sets it from "
                              "the stack config)")
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    return value


def _float(env, name: str, default: float) -> float:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"environment variable {name}={raw!r} is not a number") from None
    if not (0 < value <= 64):
        raise ConfigError(f"environment variable {name}={raw!r} must be in (0, 64]")
    return value


def _bool(env, name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    if raw.lower() in ("true", "1", "yes"):
        return True
    if raw.lower() in ("false", "0", "no"):
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


@dataclass(frozen=True)
class RedisSettings:
    host: str
    port: int
    tls: bool
    ca_file: str | None
    # The AUTH string: Cloud Functions puts the Secret Manager secret in this variable
    # (secret_environment_variables, components/gcp/functions.py).
    password: str | None
    prefix: str

    @classmethod
    def from_env(cls, env=os.environ) -> "RedisSettings":
        tls = _bool(env, names.REDIS_TLS, False)
        ca_file = env.get(names.REDIS_CA_FILE) or None
        if tls and not ca_file:
            raise ConfigError("REDIS_CA_FILE is required when REDIS_TLS is true: the "
                              "instance's server CA is pinned, never the system store")
        return cls(host=_str(env, names.REDIS_HOST), port=_int(env, names.REDIS_PORT, 6379, 1),
                   tls=tls, ca_file=ca_file, password=env.get(names.REDIS_PASSWORD) or None,
                   prefix=env.get(names.REDIS_PREFIX, "sdfleet:"))


@dataclass(frozen=True)
class KubernetesSettings:
    api_url: str
    ca_file: str | None
    ca_data: str | None           # base64 PEM
    token: str | None             # tests only; production uses google-auth
    namespace: str
    fleet: str                    # the default profile's fleet
    port_name: str                # the game server port that is the WebUI
    timeout_seconds: float
    workers: int
    fleets: tuple[str, ...] = ()  # every profile's fleet (default: just `fleet`)

    def __post_init__(self):
        if not self.fleets:
            object.__setattr__(self, "fleets", (self.fleet,))

    @classmethod
    def from_env(cls, env=os.environ) -> "KubernetesSettings":
        from .profiles import ProfilesError, load_profiles
        try:
            profiles = load_profiles(env, env.get(names.FLEET_NAME))
        except ProfilesError as e:
            raise ConfigError(str(e)) from None
        default = next(p for p in profiles if p.default)
        return cls(api_url=_str(env, names.K8S_API_URL).rstrip("/"),
                   ca_file=env.get("K8S_CA_FILE") or None, ca_data=env.get(names.K8S_CA_DATA) or None,
                   token=env.get("K8S_TOKEN") or None,
                   namespace=_str(env, names.AGONES_NAMESPACE, "default"),
                   fleet=default.fleet, fleets=tuple(p.fleet for p in profiles),
                   port_name=env.get("GAMESERVER_PORT_NAME", "webui"),
                   timeout_seconds=_int(env, "K8S_TIMEOUT_SECONDS", 5, 1),
                   workers=_int(env, "K8S_WORKERS", 16, 1))


@dataclass(frozen=True)
class AllocatorSettings:
    iap_audience: str
    iap_certs_url: str
    clock_skew_seconds: int
    lock_seconds: int
    lock_wait_seconds: float
    profiles: tuple = ()          # shared.profiles.Profile, the default one among them
    groups_api_url: str = "https://cloudidentity.googleapis.com"
    group_cache_seconds: int = 300
    budgets: object = None        # shared.budgets.Budgets, or None: no caps
    max_session_seconds: int = 8 * 3600   # the longest a group-budget session may hold
    admins: tuple[str, ...] = ()  # members who may see and end sessions

    @classmethod
    def from_env(cls, env=os.environ) -> "AllocatorSettings":
        return cls(iap_audience=_str(env, names.IAP_AUDIENCE),
                   iap_certs_url=env.get("IAP_CERTS_URL") or DEFAULT_IAP_CERTS_URL,
                   clock_skew_seconds=_int(env, "IAP_CLOCK_SKEW_SECONDS", 30),
                   lock_seconds=_int(env, "ALLOCATION_LOCK_SECONDS", 20, 5),
                   lock_wait_seconds=_int(env, "ALLOCATION_LOCK_WAIT_MS", 8000) / 1000,
                   profiles=tuple(_profiles(env)),
                   groups_api_url=env.get(GROUPS_API_URL) or "https://cloudidentity.googleapis.com",
                   group_cache_seconds=_int(env, GROUP_CACHE_SECONDS, 300),
                   budgets=_budgets(env),
                   max_session_seconds=_int(env, names.MAX_SESSION_SECONDS, None, 1),
                   admins=_admins(env))


def _admins(env) -> tuple[str, ...]:
    from .env import ADMINS
    raw = env.get(ADMINS)
    if not raw:
        return ()
    try:
        members = json.loads(raw)
    except ValueError:
        raise ConfigError(f"{ADMINS} is not JSON") from None
    if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
        raise ConfigError(f"{ADMINS} must be a JSON list of members")
    return tuple(members)


def _budgets(env):
    from .budgets import BudgetsError, load_budgets
    try:
        return load_budgets(env)
    except BudgetsError as e:
        raise ConfigError(str(e)) from None


def _profiles(env):
    from .profiles import ProfilesError, load_profiles
    try:
        return load_profiles(env, env.get(names.FLEET_NAME), _float(env, names.GPUS_PER_POD, 1.0))
    except ProfilesError as e:
        raise ConfigError(str(e)) from None


@dataclass(frozen=True)
class CullerSettings:
    idle_seconds: int
    max_session_seconds: int
    orphan_grace_seconds: int
    pass_budget_seconds: int
    batch_limit: int
    reconcile_page_size: int
    reconcile_mappings_per_pass: int
    invoker_audience: str
    invoker_emails: tuple[str, ...]
    oidc_certs_url: str
    gpus_per_pod: float = 1.0   # what one session holds: usage is counted in GPU-seconds
    # Per profile's fleet, when profiles differ in GPUs (game servers are named after
    # their fleet: <fleet>-<set>-<id>).
    gpus_per_fleet: tuple[tuple[str, float], ...] = ()
    profile_per_fleet: tuple[tuple[str, str], ...] = ()

    def profile_for(self, game_server: str) -> str:
        """The profile whose fleet made this game server ("" if none)."""
        from .profiles import fleet_of
        match = fleet_of(game_server, [f for f, _ in self.profile_per_fleet])
        return dict(self.profile_per_fleet)[match] if match else ""

    def gpus_for(self, game_server: str) -> float:
        """GPUs a session on this game server holds."""
        from .profiles import fleet_of
        match = fleet_of(game_server, [f for f, _ in self.gpus_per_fleet])
        return dict(self.gpus_per_fleet)[match] if match else self.gpus_per_pod

    @classmethod
    def from_env(cls, env=os.environ) -> "CullerSettings":
        emails = tuple(e.strip() for e in _str(env, names.CULL_INVOKER_EMAILS).split(",") if e.strip())
        return cls(idle_seconds=_int(env, names.IDLE_TIMEOUT_SECONDS, None, 1),
                   max_session_seconds=_int(env, names.MAX_SESSION_SECONDS, None, 1),
                   orphan_grace_seconds=_int(env, names.ORPHAN_GRACE_SECONDS, 300),
                   pass_budget_seconds=_int(env, "CULL_PASS_BUDGET_SECONDS", 45, 1),
                   batch_limit=_int(env, "CULL_BATCH_LIMIT", 5000, 1),
                   reconcile_page_size=_int(env, "RECONCILE_PAGE_SIZE", 100, 1),
                   reconcile_mappings_per_pass=_int(env, "RECONCILE_MAPPINGS_PER_PASS", 20),
                   invoker_audience=_str(env, names.CULL_INVOKER_AUDIENCE),
                   invoker_emails=emails,
                   oidc_certs_url=env.get("OIDC_CERTS_URL") or DEFAULT_OIDC_CERTS_URL,
                   gpus_per_pod=_float(env, names.GPUS_PER_POD, 1.0),
                   gpus_per_fleet=tuple((p.fleet, p.gpus_per_pod) for p in _profiles(env)),
                   profile_per_fleet=tuple((p.fleet, p.name) for p in _profiles(env)))
