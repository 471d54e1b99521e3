"""One line per check: ✓ passed, ✗ failed (with what fixes it), · a note that fails nothing."""

from __future__ import annotations

from dataclasses import dataclass

PASS, FAIL, NOTE = "✓", "✗", "·"


@dataclass(frozen=True)
class Check:
    status: str
    name: str
    detail: str
    fix: str = ""

    def line(self) -> str:
        text = f"{self.status} {self.name}: {self.detail}"
        return f"{text}\n    fix: {self.fix}" if self.fix else text


def passed(name: str, detail: str) -> Check:
    return Check(PASS, name, detail)


def failed(name: str, detail: str, fix: str) -> Check:
    return Check(FAIL, name, detail, fix)


def note(name: str, detail: str, fix: str = "") -> Check:
    return Check(NOTE, name, detail, fix)


def exit_code(checks: list[Check]) -> int:
    """2 if anything failed (the same code as a config error), else 0."""
    return 2 if any(c.status == FAIL for c in checks) else 0
