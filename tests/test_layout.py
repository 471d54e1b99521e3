"""The suite's layout stays what tests/README.md says, and nothing outside tests/ imports it.

Benchmarks and `make demo` once imported helpers from tests/, so moving a test could break
`make bench`; what they share lives in testing/ (a package that holds no tests).
"""

from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"


def _readme_folders() -> set[str]:
    rows = re.findall(r"^\| `([a-z_]+)/` \|", (TESTS / "README.md").read_text(), re.MULTILINE)
    return set(rows)


def test_every_test_folder_has_its_row_and_every_row_its_folder():
    folders = {p.name for p in TESTS.iterdir() if p.is_dir() and p.name != "__pycache__"
               and any(p.iterdir())}
    rows = _readme_folders()
    assert folders - rows == set(), f"folders without a row in tests/README.md: {folders - rows}"
    assert rows - folders == set(), f"rows for folders that do not exist: {rows - folders}"


def test_nothing_outside_tests_imports_from_tests():
    tracked = subprocess.run(["git", "ls-files", "*.py"], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout.split()
    found = []
    for rel in tracked:
        if rel.startswith("tests/"):
            continue
        path = ROOT / rel
        if not path.is_file():
            continue
        for node in ast.walk(ast.parse(path.read_text(), rel)):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level
                     else [])
            found += [f"{rel}:{node.lineno} imports {n}" for n in names
                      if n == "tests" or n.startswith("tests.")]
    assert not found, "\n".join(found)


def test_no_program_file_is_over_400_lines():
    """A file past 400 lines holds more than one job; split it by job (docs are generated or
    prose, and not counted)."""
    tracked = subprocess.run(["git", "ls-files", "*.py", "*.lua", "*.sh"], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout.split()
    long = {rel: n for rel in tracked if (ROOT / rel).is_file()
            and (n := len((ROOT / rel).read_text(errors="replace").splitlines())) > 400}
    assert not long, f"files over 400 lines: {long}"
