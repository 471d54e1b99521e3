"""The allocator's decision rules (the culler's are in culler/rules.py), each one readable
function, pure (no I/O):

    admit(email, profile, group_answer)   may this person start this profile?
    choose(allowed, remembered, asked)    which profile does this request start, if any?
    capacity_problem(events, profile)     why can no GPU node come for a pending pod?
    budget_of(email, budgets, group_answer)  the person's GPU-hours this month, if capped
    within_budget(used, allowed, ...)     may a session start, and when must it end?
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Iterable, Optional

from shared.profiles import Profile


@dataclass(frozen=True)
class Admission:
    allowed: bool
    reason: str = ""           # "", "not-a-member", "membership-unknown"
    message: str = ""


def admit(email: str, profile: Profile,
          group_answer: Callable[[str], Optional[bool]]) -> Admission:
    """Allowed when the profile admits everyone who may sign in, names the person, their
    domain, or a group they belong to. `group_answer(group)` is True/False, or None when
    the membership could not be checked: then the person is refused (never let in by an
    error), with a sentence that says so."""
    if profile.access is None:
        return Admission(True)
    email = email.lower()
    domain = email.rsplit("@", 1)[-1]
    unknown = []
    for member in profile.access:
        kind, _, value = member.partition(":")
        value = value.lower()
        if (kind == "user" and value == email) or (kind == "domain" and domain == value):
            return Admission(True)
    for member in profile.access:
        kind, _, value = member.partition(":")
        if kind != "group":
            continue
        answer = group_answer(value.lower())
        if answer:
            return Admission(True)
        if answer is None:
            unknown.append(value)
    if unknown:
        return Admission(False, "membership-unknown",
                         f"Your membership in {', '.join(unknown)} cannot be checked right now, "
                         f"so {profile.display_name} cannot be started. Try again in a minute; "
                         "if it persists, tell the platform's administrators.")
    return Admission(False, "not-a-member",
                     f"You may not use {profile.display_name}. Ask the platform's "
                     "administrators if you need it.")


@dataclass(frozen=True)
class Choice:
    profile: Optional[Profile]     # the one to start
    ask: bool = False              # several allowed and none chosen: ask the person
    refused: Optional[Admission] = None


def choose(profiles: list[Profile], admissions: dict[str, Admission],
           remembered: Optional[str], asked: Optional[str]) -> Choice:
    """Which profile a request starts: the one asked for (if admitted), else the one the
    person chose before (if still admitted), else their only one; several and no choice
    yet: ask. Nobody admitted anywhere: refused (the reason of the default profile)."""
    allowed = [p for p in profiles if admissions[p.name].allowed]
    if asked is not None:
        wanted = next((p for p in profiles if p.name == asked), None)
        if wanted is None:
            return Choice(None, refused=Admission(False, "unknown-profile",
                                                  f"There is no profile named {asked!r}."))
        if not admissions[asked].allowed:
            return Choice(None, refused=admissions[asked])
        return Choice(wanted)
    if remembered is not None:
        for p in allowed:
            if p.name == remembered:
                return Choice(p)
    if len(allowed) == 1:
        return Choice(allowed[0])
    if allowed:
        return Choice(None, ask=True)
    unknown = next((a for a in admissions.values() if a.reason == "membership-unknown"), None)
    default = next(p for p in profiles if p.default)
    return Choice(None, refused=unknown or Admission(
        False, "no-profile", "You may sign in, but no WebUI profile is open to you. Ask the "
        f"platform's administrators to add you to one (for example {default.display_name})."))


# --- capacity ---------------------------------------------------------------------------
# Events the cluster autoscaler writes on a pod it could not find a node for. Reasons:
# `FailedScaleUp` (a scale-up was tried and failed: quota, stock-out) and `NotTriggerScaleUp`
# (no node group could take the pod: at its maximum, in backoff after a failed scale-up).
# The message fragments are matched case-insensitively (docs/decisions/2026-12-profiles.md).
CAPACITY_EVENT_SECONDS = 180   # an event older than this describes an earlier attempt

_KINDS = (
    ("quota", ("quota",)),
    ("stock-out", ("resource_pool_exhausted", "resource pool exhausted", "out of resources",
                   "stockout", "zone_resources_pool_exhausted")),
    ("pool-at-maximum", ("max node group size reached", "max cluster", "maximum node")),
    ("backoff", ("in backoff after failed scale-up", "backoff")),
)


@dataclass(frozen=True)
class CapacityProblem:
    kind: str            # quota | stock-out | pool-at-maximum | backoff | scale-up-failed
    message: str         # the sentence a person reads
    detail: str          # the event's own message, for the operators' log


def capacity_problem(events: Iterable[dict], profile: Profile,
                     now: Optional[float] = None) -> Optional[CapacityProblem]:
    """From the events of a profile's pending game server pods: why no node comes, or None
    (no recent autoscaler verdict: a node may still be on its way)."""
    now = time.time() if now is None else now
    best = None
    for event in events:
        reason = event.get("reason")
        if reason not in ("FailedScaleUp", "NotTriggerScaleUp"):
            continue
        if now - event_time(event) > CAPACITY_EVENT_SECONDS:
            continue
        text = str(event.get("message") or "")
        lowered = text.lower()
        kind = next((k for k, needles in _KINDS if any(n in lowered for n in needles)), None)
        if kind is None:
            if reason != "FailedScaleUp":
                continue   # e.g. only other node pools' selectors did not match
            kind = "scale-up-failed"
        if best is None or _rank(kind) < _rank(best[0]):
            best = (kind, text)
    if best is None:
        return None
    kind, text = best
    gpu = f"{profile.gpu} GPUs" if profile.gpu else "GPU machines"
    where = f" in {profile.region}" if profile.region else ""
    if kind == "pool-at-maximum":
        message = (f"All the {gpu} this platform may start are in use. You get one as soon as "
                   "someone's session ends; this page keeps trying.")
    else:
        message = (f"No {gpu} are available{where} right now"
                   + (" (the project's GPU quota is used up)" if kind == "quota" else "")
                   + ". This page keeps trying.")
    return CapacityProblem(kind, message, text[:300])


def _rank(kind: str) -> int:
    return [k for k, _ in _KINDS].index(kind) if kind in dict(_KINDS) else len(_KINDS)


def event_time(event: dict) -> float:
    """When an event last happened: series, lastTimestamp, eventTime, firstTimestamp."""
    from shared.agones import _parse_time
    for value in ((event.get("series") or {}).get("lastObservedTime"), event.get("lastTimestamp"),
                  event.get("eventTime"), event.get("firstTimestamp"),
                  (event.get("metadata") or {}).get("creationTimestamp")):
        if value:
            parsed = _parse_time(value)
            if parsed:
                return parsed
    return 0.0


# --- budgets ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Budget:
    gpu_hours: float
    source: str           # the member entry, or "default"
    pool: Optional[str] = None   # a group's email: the budget is shared by its members
    profile: Optional[str] = None  # only this profile's sessions count against it


def budget_of(email: str, budgets, group_answer: Callable[[str], Optional[bool]],
              profile: Optional[str] = None) -> Optional[Budget]:
    """The most specific budget naming the person for a session of `profile`: user, else the
    largest of their groups', else domain, else the default (an entry for this profile
    before one for all profiles, at each step); None: no cap. A group that cannot be checked
    does not count (the person then gets the next most specific budget, never none by error)."""
    if budgets is None:
        return None
    email = email.lower()
    domain = email.rsplit("@", 1)[-1]
    by_kind: dict[str, list[Budget]] = {"user": [], "group": [], "domain": []}
    for member, hours, only in budgets.members:
        if only is not None and only != profile:
            continue
        kind, _, value = member.partition(":")
        value = value.lower()
        if kind == "user" and value == email:
            by_kind["user"].append(Budget(hours, member, profile=only))
        elif kind == "domain" and value == domain:
            by_kind["domain"].append(Budget(hours, member, profile=only))
        elif kind == "group" and group_answer(value):
            pool = value if only is None else f"{value}@{only}"
            by_kind["group"].append(Budget(hours, member, pool=pool, profile=only))
    for kind in ("user", "group", "domain"):
        if by_kind[kind]:
            return max(by_kind[kind], key=lambda b: (b.profile is not None, b.gpu_hours))
    if budgets.default_gpu_hours is not None:
        return Budget(budgets.default_gpu_hours, "default")
    return None


@dataclass(frozen=True)
class BudgetVerdict:
    allowed: bool
    ends_at: Optional[float] = None   # when the session must end for the budget
    message: str = ""
    source: str = ""
    pool: Optional[str] = None        # a group's shared budget the session holds part of
    held: Optional[float] = None      # GPU-seconds held
    held_in: Optional[str] = None     # the reservation's field


def _resets(resets_at: float) -> str:
    return time.strftime("%d %B %Y", time.gmtime(resets_at)).lstrip("0")


def pool_budget(ok: bool, amount: float, field: str, budget: Budget, gpus_per_pod: float,
                now: float, resets_at: float, contact: str) -> BudgetVerdict:
    """A group's shared budget, after the atomic check-and-hold: refused when the group's
    used and held GPU-seconds (`amount`) leave nothing; else the session holds `amount`
    and ends when it is spent."""
    if not ok:
        return BudgetVerdict(False, source=budget.source, message=(
            f"Your group {budget.pool.split('@')[0] + '@' + budget.pool.split('@')[1]} has used "
            f"{amount / 3600:.1f} of the {budget.gpu_hours:g} GPU-hours its members share "
            f"{'on profile ' + budget.profile + ' ' if budget.profile else ''}this month (running sessions included). It resets on "
            f"{_resets(resets_at)} (UTC). For more, ask {contact}."))
    return BudgetVerdict(True, ends_at=now + amount / max(gpus_per_pod, 1e-9),
                         source=budget.source, pool=budget.pool, held=amount, held_in=field)


def within_budget(used_gpu_seconds: float, budget: Optional[Budget], gpus_per_pod: float,
                  now: float, resets_at: float, contact: str) -> BudgetVerdict:
    """Over budget: refused with what was used, what is allowed, when it resets and whom to
    ask. Under: allowed, ending when the rest of the budget is spent at this pod's GPUs."""
    if budget is None:
        return BudgetVerdict(True)
    allowed = budget.gpu_hours * 3600
    left = allowed - used_gpu_seconds
    if left <= 0:
        return BudgetVerdict(False, source=budget.source, message=(
            f"You have used {used_gpu_seconds / 3600:.1f} of your {budget.gpu_hours:g} GPU-hours "
            f"{'of profile ' + budget.profile + ' ' if budget.profile else ''}this month. Your budget resets on {_resets(resets_at)} (UTC). For more, ask {contact}."))
    return BudgetVerdict(True, ends_at=now + left / max(gpus_per_pod, 1e-9), source=budget.source)
