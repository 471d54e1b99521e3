"""Every upstream ref an image pins has a row in docs/pinned-refs.md saying how it was confirmed,
and each framework's flag table names the ref the Dockerfile pins.

A commit that no copy of the framework holds passed every test (the flags were read "at" it)
and would have failed the first build at its checkout: the record makes each ref's evidence
visible, and this test keeps the record, the Dockerfiles and the flag tables in step.
"""

from __future__ import annotations

import re

import pytest

from components.images import IMAGES, ROOT, base_images

RECORD = ROOT / "docs" / "pinned-refs.md"
WEBUI = ROOT / "images" / "webui"
# Dockerfile ARGs that name an upstream source ref.
REF_ARG = re.compile(r"^ARG\s+(\w+_(?:COMMIT|REF))=(\S+)\s*$", re.MULTILINE)
ENV_REF = re.compile(r"(STABLE_DIFFUSION_COMMIT_HASH)=(\S+)")


def record_rows() -> dict[str, list[str]]:
    """First backticked ref of each row's ref cell -> the row's cells."""
    rows = {}
    for line in RECORD.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 5 or cells[0] in ("what", "---"):
            continue
        ref = re.search(r"`([^`]+)`", cells[1])
        if ref:
            rows[ref.group(1)] = cells
    return rows


def pinned_refs() -> dict[str, str]:
    """ref -> where it is pinned, for every Dockerfile, extension list and base image."""
    refs: dict[str, str] = {}
    dockerfile = (WEBUI / "Dockerfile").read_text()
    for arg, value in REF_ARG.findall(dockerfile) + ENV_REF.findall(dockerfile):
        refs[value] = f"images/webui/Dockerfile {arg}"
    for listing in sorted((WEBUI / "extensions").glob("*.txt")):
        for line in listing.read_text().splitlines():
            fields = line.split("#", 1)[0].split()
            if len(fields) == 3:
                refs[fields[2]] = f"{listing.relative_to(ROOT)} {fields[0]}"
    for name in IMAGES:
        for arg, reference in base_images(name).items():
            refs[reference] = f"{IMAGES[name].context}/Dockerfile {arg}"
    return refs


def test_the_record_reads_as_a_table():
    rows = record_rows()
    assert len(rows) >= 8


@pytest.mark.parametrize("ref, where", sorted(pinned_refs().items()))
def test_every_pinned_ref_has_a_row_saying_how_it_was_confirmed(ref, where):
    rows = record_rows()
    assert ref in rows, f"{where} pins {ref}, which docs/pinned-refs.md does not record"
    confirmed = rows[ref][3]
    assert re.match(r"(replay|recorded):", confirmed), (
        f"{ref}: the 'confirmed' cell must start 'replay:' or 'recorded:' and say how")
    assert len(confirmed) > 40, f"{ref}: say how it was confirmed, not only that it was"


def test_no_row_records_a_ref_nothing_pins():
    pinned = pinned_refs()
    stale = [ref for ref in record_rows() if ref not in pinned]
    assert not stale, f"docs/pinned-refs.md records refs nothing pins any more: {stale}"


FLAG_TABLE_REFS = {
    "A1111_FLAGS": "A1111_COMMIT", "SDNEXT_FLAGS": "SDNEXT_COMMIT", "COMFYUI_FLAGS": "COMFYUI_REF"}


@pytest.mark.parametrize("table, arg", sorted(FLAG_TABLE_REFS.items()))
def test_each_flag_table_names_the_ref_the_dockerfile_pins(table, arg):
    source = (ROOT / "tests/images/test_framework_flags.py").read_text()
    comment = source[:source.index(f"{table} = {{")].rsplit("\n\n", 1)[-1]
    ref = dict(REF_ARG.findall((WEBUI / "Dockerfile").read_text()))[arg]
    # A commit is named by its first 8 hex digits, a tag by itself.
    named = ref[:8] if re.fullmatch(r"[0-9a-f]{40}", ref) else ref
    assert named in comment, f"{table}'s source comment does not name {arg}={named}: {comment!r}"
