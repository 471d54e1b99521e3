"""`ruff check` over the whole repository (rules in ruff.toml) finds nothing.

Runs the pinned ruff (tests/requirements.txt) as a subprocess, so a fresh clone's `make test`
lints exactly as a developer's `ruff check .` does.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Findings known at the time ruff was added, in files other work was changing at that moment.
# Each entry is (path, rule code). The lead removes entries as the files are fixed; an entry
# that no longer matches a finding fails the test, so the list can only shrink.
KNOWN_FINDINGS: set[tuple[str, str]] = set()

# Rules the brief asks for; ruff.toml must keep selecting them.
REQUIRED_RULES = {"F401": "import os\n",
                  "F841": "def f():\n    unused = 1\n",
                  "F821": "def f():\n    return undefined_name\n",
                  "B006": "def f(items=[]):\n    return items\n",
                  "E722": "try:\n    pass\nexcept:\n    pass\n",
                  "I001": "import sys\nimport os\n\nprint(os, sys)\n"}


def _ruff(*args: str, cwd: Path = ROOT) -> list[dict]:
    proc = subprocess.run([sys.executable, "-m", "ruff", "check", "--output-format", "json",
                           "--no-cache", *args], cwd=cwd, capture_output=True, text=True, timeout=120)
    assert proc.returncode in (0, 1), f"ruff failed to run: {proc.stderr}"
    return json.loads(proc.stdout or "[]")


def test_ruff_finds_nothing_new():
    findings = _ruff(".")
    seen = {(Path(f["filename"]).resolve().relative_to(ROOT).as_posix(), f["code"]) for f in findings}
    new = [f"{Path(f['filename']).resolve().relative_to(ROOT).as_posix()}:{f['location']['row']}: "
           f"{f['code']} {f['message']}"
           for f in findings
           if (Path(f["filename"]).resolve().relative_to(ROOT).as_posix(), f["code"]) not in KNOWN_FINDINGS]
    assert not new, "ruff check (ruff.toml) found:\n" + "\n".join(new)
    fixed = KNOWN_FINDINGS - seen
    assert not fixed, f"fixed, remove from KNOWN_FINDINGS in tests/test_lint.py: {sorted(fixed)}"


@pytest.mark.parametrize("code", sorted(REQUIRED_RULES))
def test_the_rule_set_catches(code, tmp_path):
    """Each required rule reports a planted fault under the repository's ruff.toml."""
    (tmp_path / "planted.py").write_text(REQUIRED_RULES[code], encoding="utf-8")
    codes = {f["code"] for f in _ruff("--config", str(ROOT / "ruff.toml"), str(tmp_path / "planted.py"),
                                      cwd=tmp_path)}
    assert code in codes, f"ruff.toml does not select {code}: found {codes}"


# --- The repository refers only to what it contains ---------------------------------------------------

def _tracked_text_files() -> list[Path]:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    files = [ROOT / name for name in out.decode().split("\0") if name]
    return [f for f in files if f.is_file() and f.suffix in (".py", ".md", ".yaml", ".yml", ".toml",
                                                             ".txt", ".lua", ".template", ".ini", "")]


def test_no_reference_to_design_notes_users_do_not_have():
    """Code and docs point at docs/architecture.md, never at notes outside the repository."""
    found = []
    for path in _tracked_text_files():
        if path == Path(__file__):
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if "DESIGN.md" in line or "../shared/" in line:
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not found, "refers to files outside the repository:\n" + "\n".join(found)


def test_architecture_section_references_exist():
    """Every `docs/architecture.md section N` names a section that page has."""
    import re

    page = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    sections = {int(n) for n in re.findall(r"^## (\d+)\. ", page, re.MULTILINE)}
    assert {2, 3, 4, 7} <= sections
    wrong = []
    for path in _tracked_text_files():
        text = path.read_text(encoding="utf-8", errors="replace")
        for match in re.finditer(r"architecture\.md`?,? sections? (\d+)", text):
            if int(match.group(1)) not in sections:
                wrong.append(f"{path.relative_to(ROOT)}: section {match.group(1)}")
    assert not wrong, wrong


def test_no_issue_numbers_in_code_or_tests():
    """Code and tests say why in their own words; where a change came from belongs in
    docs/decisions/ and the history, not in a tracker number a reader cannot look up."""
    pattern = re.compile(r"\b[Ii]ssue (\d+|: )")
    found = []
    for path in _tracked_text_files():
        if path == Path(__file__) or path.suffix not in (".py", ".lua", ".template", "", ".sh"):
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if pattern.search(line):
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not found, "issue numbers in code or tests:\n" + "\n".join(found)


# Repository paths named in code, comments and docs, e.g. `functions/culler/rules.py`.
REPO_PATH = re.compile(r"(?<![\w./-])((?:components|functions|images|tests|testing|tools|policy|docs|"
                       r"benchmarks)/[A-Za-z0-9_./-]*[A-Za-z0-9_-]\.(?:py|md|yaml|yml|txt|lua|sh|json|"
                       r"toml|template))\b")


def test_every_repository_path_a_file_names_exists():
    """A comment or a doc that names a file which moved sends its reader nowhere."""
    missing = []
    for path in _tracked_text_files():
        if path == Path(__file__):
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), 1):
            for name in REPO_PATH.findall(line):
                if not (ROOT / name).exists():
                    missing.append(f"{path.relative_to(ROOT)}:{number}: {name}")
    assert not missing, "names files that do not exist:\n" + "\n".join(missing)
