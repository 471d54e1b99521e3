"""Profiles: what a person may start (a WebUI framework on a GPU pool, with a model list),
and who may start it. One Fleet per profile; the allocator admits a person to a profile by
its `access` list.

A platform without `profiles` has one implicit profile built from `webui.framework` and the
`fleet` section, whose resources keep the names they had before profiles existed (a stack
that never set profiles plans unchanged). `effective_profiles` is the one place that builds
the list every consumer (fleets, images, functions, cost) reads."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Literal, Optional

from pydantic import AfterValidator, Field

from components.config.fields import Cron, Section, Timezone
from components.config.fleet_limits import buffer_policy_problems
from components.registries.frameworks import WEBUI_FRAMEWORKS

# Who a profile admits: the IAP member forms that name people (service accounts never get a
# WebUI). A group is checked through the Cloud Identity Groups API at allocation time.
_PROFILE_MEMBER = re.compile(r"^(user|group):[^@\s]+@[^@\s]+\.[a-z]{2,}$|^domain:[a-z0-9.-]+\.[a-z]{2,}$")

# The name of the implicit profile of a platform without `profiles`.
IMPLICIT_PROFILE = "default"


def _profile_member(value: str) -> str:
    if not _PROFILE_MEMBER.match(value):
        raise ValueError("expected user:<email>, group:<email> or domain:<domain>")
    return value


class PeakHours(Section):
    """A larger warm buffer during working hours (Agones scheduled autoscaling)."""

    start_cron: Cron = Field(
        "0 8 * * 1-5",
        description="When each peak window opens: five-field unix cron, e.g. '0 8 * * 1-5'.")
    duration: Annotated[str, Field(pattern=r"^[0-9]+h([0-9]+m)?$")] = Field(
        "10h",
        description="How long each window lasts, e.g. 10h or 9h30m.")
    timezone: Timezone = Field(
        "Etc/UTC",
        description="IANA time zone of start_cron, e.g. Europe/Berlin.")
    buffer: Annotated[int, Field(ge=0, le=1000)] = Field(
        2,
        description="Ready WebUI pods to keep during the window.")


class ProfileConfig(Section):
    """One choice people may start: a framework on a GPU pool, for the members it names."""

    # Short: the fleet is named <prefix>-webui-<name>, and game server names add to that.
    name: Annotated[str, Field(pattern=r"^[a-z]([-a-z0-9]{0,18}[a-z0-9])?$")] = Field(
        description="Slug of the profile (lower-case letters, digits, '-'; at most 20).")
    display_name: Annotated[str, Field(min_length=1, max_length=60)] = Field(
        description="What people see on the choice page, e.g. 'A1111 on an L4'.")
    description: Annotated[str, Field(max_length=300)] = Field(
        "", description="One or two sentences under the name on the choice page.")
    framework: Literal[WEBUI_FRAMEWORKS] = Field(description="The WebUI this profile runs.")
    gpu_pool: str = Field(description="The gpuPools entry its pods run on.")
    models: Optional[list[str]] = Field(
        None, description="Names of models.items this profile loads; default: all of them.")
    access: Optional[list[Annotated[str, AfterValidator(_profile_member)]]] = Field(
        None,
        description=("Who may start it: user:, group: or domain: members; default: everyone "
                     "who may sign in (access.members)."))
    warm: Annotated[int, Field(ge=1, le=1000)] = Field(
        1, description="Ready pods kept waiting (Agones needs at least 1 to allocate from).")
    max_sessions: Annotated[int, Field(ge=1, le=1000)] = Field(
        8, description="Most pods of this profile at once (people plus the warm ones).")
    placeholders: Annotated[int, Field(ge=0, le=1000)] = Field(
        0, description="Low-priority pods that keep this profile's GPU nodes up (0: none).")
    peak_hours: Optional[PeakHours] = Field(
        None, description="A larger warm buffer in working hours.")
    default: bool = Field(
        False, description="Whom nobody asked gets this one; exactly one profile is the default.")


@dataclass(frozen=True)
class Profile:
    """A profile as the components read it: the implicit one or a configured one."""

    name: str
    display_name: str
    description: str
    framework: str
    gpu_pool: str
    models: Optional[tuple[str, ...]]      # None: every model
    access: Optional[tuple[str, ...]]      # None: everyone who may sign in
    warm: int
    min_replicas: int
    max_sessions: int
    placeholders: int
    peak_hours: Optional[PeakHours]
    default: bool
    implicit: bool                          # built from webui + fleet: today's names

    def fleet_name(self, prefix: str) -> str:
        """The Fleet (and its component): the implicit profile's is `<prefix>-webui`."""
        return f"{prefix}-webui" if self.implicit else f"{prefix}-webui-{self.name}"


def effective_profiles(platform) -> list[Profile]:
    """The configured profiles, or the one built from `webui.framework` and `fleet`."""
    if not platform.profiles:
        fleet = platform.fleet
        pool = fleet.gpu_pool or (platform.gpu_pools[0].name if platform.gpu_pools else "")
        return [Profile(
            name=IMPLICIT_PROFILE, display_name="Stable Diffusion WebUI", description="",
            framework=platform.webui.framework, gpu_pool=pool, models=None, access=None,
            warm=fleet.buffer, min_replicas=fleet.min_replicas, max_sessions=fleet.max_replicas,
            placeholders=fleet.placeholders, peak_hours=fleet.peak_hours, default=True,
            implicit=True)]
    several = len(platform.profiles) > 1
    return [Profile(
        name=c.name, display_name=c.display_name, description=c.description,
        framework=c.framework, gpu_pool=c.gpu_pool,
        models=tuple(c.models) if c.models is not None else None,
        access=tuple(c.access) if c.access is not None else None, warm=c.warm, min_replicas=0,
        max_sessions=c.max_sessions, placeholders=c.placeholders, peak_hours=c.peak_hours,
        default=c.default or not several, implicit=False) for c in platform.profiles]


# The fleet and webui keys a profile takes over: with `profiles`, each profile says them.
PROFILE_OWNED_KEYS = {("fleet", "gpu_pool"): "gpuPool", ("fleet", "buffer"): "warm",
                      ("fleet", "max_replicas"): "maxSessions",
                      ("fleet", "placeholders"): "placeholders",
                      ("fleet", "peak_hours"): "peakHours", ("fleet", "min_replicas"): None,
                      ("webui", "framework"): "framework"}


def profile_problems(platform, bad, problem) -> None:
    """The profile rules; `bad(loc, value, allowed)` and `problem(loc, text)` report one line."""
    from components.registries.accelerators import GCE_ACCELERATORS
    from components.registries.frameworks import FRAMEWORKS

    profiles = platform.profiles
    if not profiles:
        return
    for (section, field), moved_to in PROFILE_OWNED_KEYS.items():
        if field in getattr(platform, section).model_fields_set:
            key = type(getattr(platform, section)).model_fields[field].alias or field
            problem((section, key), "set per profile when profiles are given: "
                    + (f"use profiles[].{moved_to}" if moved_to else "remove it (profiles start at 0)"))
    pools = {pool.name: pool for pool in platform.gpu_pools}
    models = {m.name: m for m in platform.models.items}
    seen: dict[str, int] = {}
    defaults = [i for i, c in enumerate(profiles) if c.default]
    for i, c in enumerate(profiles):
        if c.name in seen:
            bad(("profiles", i, "name"), c.name, f"profile names must be unique (profiles[{seen[c.name]}])")
        seen.setdefault(c.name, i)
        pool = pools.get(c.gpu_pool)
        if pool is None:
            bad(("profiles", i, "gpuPool"), c.gpu_pool,
                f"must name a GPU pool: {', '.join(pools) or '(none)'}")
        else:
            accelerator = GCE_ACCELERATORS.get(pool.accelerator)
            framework = FRAMEWORKS[c.framework]
            if accelerator is not None:
                per_pod = accelerator.memory_gib * pool.accelerator_count / (pool.time_sharing_clients or 1)
                if per_pod < framework.min_gpu_memory_gib:
                    bad(("profiles", i, "framework"), c.framework,
                        f"{framework.label} needs at least {framework.min_gpu_memory_gib} GiB of GPU "
                        f"memory per pod; gpuPools {pool.name!r} gives {per_pod:g} GiB "
                        f"({accelerator.label}" + (f" shared by {pool.time_sharing_clients}"
                                                   if pool.time_sharing_clients else "") + ")")
        for j, model in enumerate(c.models or []):
            if model not in models:
                bad(("profiles", i, "models", j), model,
                    f"must name an entry of models.items: {', '.join(models) or '(none)'}")
        if c.models is not None and models and not any(
                models[m].kind == "checkpoint" for m in c.models if m in models):
            problem(("profiles", i, "models"), "needs at least one checkpoint, or leave models out "
                    "(all of them)")
        for key, value, allowed in buffer_policy_problems(c.warm, 0, c.max_sessions):
            bad(("profiles", i, "warm" if key == "bufferSize" else "maxSessions"), value,
                allowed.replace("fleet.maxReplicas", "maxSessions"))
        if c.peak_hours is not None:
            for key, value, allowed in buffer_policy_problems(c.peak_hours.buffer, 0, c.max_sessions):
                if key == "bufferSize":
                    bad(("profiles", i, "peakHours", "buffer"), value,
                        allowed.replace("fleet.maxReplicas", "maxSessions"))
    if len(profiles) > 1 and len(defaults) != 1:
        if defaults:
            bad(("profiles", defaults[1], "default"), True,
                f"only one profile may be the default (profiles[{defaults[0]}] is)")
        else:
            problem(("profiles",), "no profile is the default; set default: true on exactly one")
