"""Each build service gets an archive of the image's context; the image must not depend on
the file modes the archive carries.

- CodeBuild: the stack uploads a `pulumi.FileArchive` zip, and Pulumi's zip writer stores no
  permission bits (every entry has external attributes 0); extracted, files get the
  extractor's defaults (0644 under umask 022): nothing is executable.
- Cloud Build: `gcloud builds submit` sends a tarball that keeps the checkout's modes, and a
  checkout made under umask 077 has files 0600 and folders 0700: nothing is readable by the
  image's unprivileged user.
The exact archive is built and unpacked as the service does, then the Dockerfile is replayed
over the unpacked modes: a RUN that executes a copied file needs it executable, and every
file the final (non-root) user reads must be readable by it.
"""

from __future__ import annotations

import io
import os
import shlex
import stat
import tarfile
import zipfile
from pathlib import Path, PurePosixPath

import dockerfile
import pytest

from components.images import IMAGES, ROOT, context_files

CONTEXTS = sorted({(src.context, src.dockerfile) for src in IMAGES.values()})


def _zip_as_pulumi_writes_it(name_context: str) -> bytes:
    buffer = io.BytesIO()
    folder = ROOT / name_context
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for rel, path in _files(folder).items():
            info = zipfile.ZipInfo(rel, date_time=(1990, 1, 1, 0, 0, 0))
            info.create_system = 0
            with archive.open(info, "w") as entry:
                entry.write(path.read_bytes())
            info.external_attr = 0        # no permission bits (written at close, below)
    return buffer.getvalue()


def _files(folder: Path) -> dict[str, Path]:
    for name, source in IMAGES.items():
        if ROOT / source.context == folder:
            return context_files(name)
    raise KeyError(folder)


def _unpacked_modes(kind: str, context: str, tmp: Path) -> dict[str, int]:
    """Context-relative path -> mode after the build service unpacks its archive."""
    out = tmp / kind
    out.mkdir()
    if kind == "codebuild-zip":
        old = os.umask(0o022)
        try:
            with zipfile.ZipFile(io.BytesIO(_zip_as_pulumi_writes_it(context))) as archive:
                archive.extractall(out)
        finally:
            os.umask(old)
    else:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
            for rel, path in _files(ROOT / context).items():
                info = archive.gettarinfo(str(path), arcname=rel)
                info.mode = 0o600 | (0o100 if path.stat().st_mode & 0o100 else 0)
                archive.addfile(info, io.BytesIO(path.read_bytes()))
        buffer.seek(0)
        with tarfile.open(fileobj=buffer, mode="r:gz") as archive:
            archive.extractall(out, filter="tar")   # keeps the modes, as Cloud Build does
    return {p.relative_to(out).as_posix(): stat.S_IMODE(p.stat().st_mode)
            for p in out.rglob("*") if p.is_file()}


def _apply_chmod(mode: int, spec: str, is_dir: bool) -> int:
    for clause in spec.split(","):
        who, op, perms = clause[:clause.index(next(c for c in clause if c in "+-="))], \
            next(c for c in clause if c in "+-="), clause.split(next(c for c in clause if c in "+-="))[1]
        who = who or "a"
        bits = 0
        for p in perms:
            if p == "r":
                bits |= 0o444
            elif p == "w":
                bits |= 0o222
            elif p == "x" or (p == "X" and (is_dir or mode & 0o111)):
                bits |= 0o111
        mask = 0
        for w in who:
            mask |= {"u": 0o700, "g": 0o070, "o": 0o007, "a": 0o777}[w]
        bits &= mask
        mode = mode | bits if op == "+" else mode & ~bits if op == "-" else (mode & ~mask) | bits
    return mode


def replay(dockerfile_text: str, modes: dict[str, int]) -> list[str]:
    """Problems the unpacked modes cause, stage by stage."""
    problems: list[str] = []
    image: dict[str, int] = {}     # path in the image -> mode (files from the context only)
    user = "0"
    workdir = "/"
    stages: dict[str, tuple[dict, str, str]] = {}
    for ins in dockerfile.parse_string(dockerfile_text):
        cmd = ins.cmd.lower()
        if cmd == "from":
            # A stage built on an earlier one starts with its files, user and folder.
            base = ins.value[0]
            image, user, workdir = (dict(stages[base][0]), stages[base][1], stages[base][2]) \
                if base in stages else ({}, "0", "/")
            if len(ins.value) >= 3 and ins.value[1].lower() == "as":
                stages[ins.value[2]] = (image, user, workdir)
        elif cmd == "workdir":
            workdir = str(PurePosixPath(workdir) / ins.value[0])
        elif cmd == "user":
            user = ins.value[0].split(":")[0]
        if cmd in ("from", "workdir", "user"):
            for stage, (files, _, _) in stages.items():
                if files is image:
                    stages[stage] = (image, user, workdir)
        elif cmd == "copy" and not any(f.startswith("--from") for f in ins.flags):
            chmod = next((f.split("=", 1)[1] for f in ins.flags if f.startswith("--chmod=")), None)
            *sources, dest = ins.value
            dest_path = PurePosixPath(workdir) / dest
            for src in sources:
                src = src.rstrip("/")
                matched = {rel: m for rel, m in modes.items() if rel == src or rel.startswith(src + "/")}
                for rel, mode in matched.items():
                    if rel == src:
                        target = dest_path / PurePosixPath(rel).name if dest.endswith("/") or \
                            len(sources) > 1 else dest_path
                    else:
                        target = dest_path / PurePosixPath(rel).relative_to(src)
                    image[str(target)] = int(chmod, 8) if chmod else mode
        elif cmd == "run":
            script = " ".join(v for v in ins.value if not v.startswith("--mount"))
            for segment in script.replace("&&", ";").replace("||", ";").replace("|", ";").split(";"):
                words = shlex.split(segment, comments=False) if segment.strip() else []
                while words and "=" in words[0] and not words[0].startswith("/"):
                    words = words[1:]        # VAR=value prefixes
                if not words:
                    continue
                if words[0] in image and not image[words[0]] & 0o100:
                    problems.append(f"RUN executes {words[0]}, which the archive leaves "
                                    f"mode {image[words[0]]:04o} (not executable)")
                if words[0] == "chmod" and len(words) >= 4 and words[1] == "-R":
                    spec, paths = words[2], words[3:]
                    for path in list(image):
                        if any(path == p or path.startswith(p.rstrip("/") + "/") for p in paths):
                            image[path] = _apply_chmod(image[path], spec, is_dir=False)
    if user not in ("0", "root"):
        for path, mode in sorted(image.items()):
            if not mode & 0o004:
                problems.append(f"user {user} cannot read {path} (mode {mode:04o})")
    return problems


@pytest.mark.parametrize("kind", ["codebuild-zip", "cloud-build-private-checkout"])
@pytest.mark.parametrize("context,dockerfile_name", CONTEXTS, ids=[c for c, _ in CONTEXTS])
def test_images_build_from_the_archive_each_service_receives(kind, context, dockerfile_name,
                                                             tmp_path):
    modes = _unpacked_modes(kind, context, tmp_path)
    assert modes, "empty archive"
    text = (ROOT / context / dockerfile_name).read_text()
    assert replay(text, modes) == []


def test_pulumis_zip_carries_no_modes():
    with zipfile.ZipFile(io.BytesIO(_zip_as_pulumi_writes_it("images/webui"))) as archive:
        assert {i.external_attr for i in archive.infolist()} == {0}


def test_the_replay_catches_a_script_run_directly_and_an_unreadable_file(tmp_path):
    modes = _unpacked_modes("codebuild-zip", "images/webui", tmp_path)
    text = (ROOT / "images/webui/Dockerfile").read_text()
    direct = text.replace("RUN sh /opt/sdfleet/install_extensions.sh",
                          "RUN /opt/sdfleet/install_extensions.sh", 1)
    assert any("executes /opt/sdfleet/install_extensions.sh" in p for p in replay(direct, modes))
    private = _unpacked_modes("cloud-build-private-checkout", "images/router", tmp_path)
    router = (ROOT / "images/router/Dockerfile").read_text()
    unfixed = "\n".join(line for line in router.splitlines()
                        if "chmod -R" not in line and "/opt/sdfleet/lua /opt/sdfleet/sdfleet_router" not in line)
    assert any("cannot read /opt/sdfleet/sdfleet_router/" in p for p in replay(unfixed, private))
