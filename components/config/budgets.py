"""GPU-hour budgets: how much GPU time a person may use per calendar month (UTC), enforced by
the allocator when a session starts and by the culler when a session's budget runs out.

A person's budget is the most specific entry that names them: a `user:` entry, else the
largest `group:` entry of a group they are in, else a `domain:` entry, else the default;
no entry and no default: no cap. User, domain and default budgets are each person's own; a
group's budget is shared by its members (the allocator holds part of it for each running
session, atomically)."""

from __future__ import annotations

from typing import Annotated, Optional

from pydantic import AfterValidator, Field

from components.config.fields import Cron, Section
from components.config.profiles import _profile_member


class MemberBudget(Section):
    member: Annotated[str, AfterValidator(_profile_member)] = Field(
        description="Whom it applies to: user:<email>, group:<email> (shared by its members) or domain:<domain> (each person).")
    gpu_hours: Annotated[float, Field(gt=0, le=100000)] = Field(
        description="GPU-hours per calendar month (UTC).")
    profile: Optional[str] = Field(
        None, description=("Only this profile's sessions count and are capped (a profile's name); "
                           "unset: all of them."))


class BudgetsConfig(Section):
    default_gpu_hours: Optional[Annotated[float, Field(gt=0, le=100000)]] = Field(
        None, description="GPU-hours per person per month for everyone no entry names; unset: no cap.")
    members: list[MemberBudget] = Field(
        default_factory=list, description="Budgets of named people, groups and domains.")
    reset_day: Annotated[int, Field(ge=1, le=28)] = Field(
        1, description="The day of the month (UTC) budgets start again (1-28).")
    contact: Annotated[str, Field(min_length=1, max_length=200)] = Field(
        "the platform's administrators",
        description="Whom a person over budget is told to ask, e.g. '#gpu-help on Slack'.")


class UsageExportConfig(Section):
    """A copy of every ended session in BigQuery, so usage survives Redis and can be queried."""

    enabled: bool = Field(
        False, description="Make a BigQuery dataset and table and export ended sessions into it.")
    schedule: Cron = Field(
        "15 3 * * *", description="When the export runs (Cloud Scheduler, UTC, five-field cron).")


def budget_problems(platform, bad) -> None:
    budgets = platform.budgets
    if budgets is None:
        return
    seen: dict[tuple, int] = {}
    names = [p.name for p in platform.effective_profiles]
    for i, entry in enumerate(budgets.members):
        key = (entry.member.lower(), entry.profile)
        if key in seen:
            bad(("budgets", "members", i, "member"), entry.member,
                f"each member once per profile (budgets.members[{seen[key]}])")
        seen.setdefault(key, i)
        if entry.profile is not None and entry.profile not in names:
            bad(("budgets", "members", i, "profile"), entry.profile,
                f"must name a profile: {', '.join(names)}")


def budget_records(budgets: Optional[BudgetsConfig]) -> Optional[dict]:
    """What the functions read (SDFLEET_BUDGETS; functions/shared/budgets.py)."""
    if budgets is None:
        return None
    return {"defaultGpuHours": budgets.default_gpu_hours,
            "members": [{"member": m.member, "gpuHours": m.gpu_hours, "profile": m.profile}
                        for m in budgets.members],
            "contact": budgets.contact, "resetDay": budgets.reset_day}
