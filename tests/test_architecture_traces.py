"""docs/architecture.md "How to add ...": every file a trace names exists, each trace touches at
most three source files, and the functions the traces name are where they say."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEADING = "### How to add a GPU type, a framework, a cull rule or an admission rule"
PATH = re.compile(r"`([A-Za-z0-9_./-]+\.(?:py|yaml|md|txt)|[A-Za-z0-9_./-]+/Dockerfile)`")


def traces() -> dict[str, list[str]]:
    text = (ROOT / "docs/architecture.md").read_text()
    section = text[text.index(HEADING):]
    section = section[:section.index("\n### ", 1)]
    bullets = re.findall(r"^- \*\*(.+?)\*\*(.*?)(?=^- \*\*|\Z)", section, re.MULTILINE | re.DOTALL)
    return {title.rstrip(":"): PATH.findall(body) for title, body in bullets}


def _defines(path: str, name: str) -> bool:
    tree = ast.parse((ROOT / path).read_text())
    return any(isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n.name == name
               for n in ast.walk(tree))


def test_the_four_traces_are_there():
    assert [t.split(" (")[0] for t in traces()] == [
        "A GPU type", "A framework", "A cull rule", "An admission rule"]


def test_every_file_a_trace_names_exists_and_no_trace_touches_more_than_three():
    for title, paths in traces().items():
        assert paths, title
        for path in paths:
            assert (ROOT / path).is_file(), f"{title}: {path} does not exist"
        sources = {p for p in paths if not p.startswith(("tests/", "docs/"))}
        assert len(sources) <= 3, f"{title} touches {len(sources)} source files: {sorted(sources)}"


def test_the_functions_the_traces_name_are_where_they_say():
    for path, name in [("functions/culler/rules.py", "decide"),
                       ("functions/culler/rules.py", "SessionView"),
                       ("functions/culler/rules.py", "Limits"),
                       ("functions/allocator/allocator_rules.py", "admit"),
                       ("functions/allocator/allocator_rules.py", "Admission"),
                       ("functions/allocator/allocation.py", "allocate")]:
        assert _defines(path, name), f"{path} no longer defines {name}"
