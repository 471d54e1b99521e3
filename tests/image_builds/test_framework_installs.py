"""The framework stages' install steps: a failed install fails the build, extensions are
checked out as the frameworks expect, build tools and attention are what the image says, and
what A1111 fetches at first load is baked in."""

from __future__ import annotations

import re

from tests.image_builds.test_dockerfile import COMMANDS, STAGES, WEBUI, constraints, env_of, runs_of


def test_every_run_fails_on_the_first_error():
    assert next(c for c in STAGES["base"] if c.cmd == "SHELL").value == ("/bin/bash", "-o", "pipefail", "-c")
    for run in runs_of(COMMANDS):
        assert not re.search(r"\|\|\s*(true|:)\b", run), f"a failure is swallowed: {run}"
        # `a; b` runs b after a failed a; in a loop the last command's status wins
        if ";" in run.replace("; then", "").replace("; do", ""):
            assert run.startswith("set -e;"), f"commands chained with ';' without set -e: {run}"


def test_install_extensions_clones_each_at_its_commit_and_refuses_an_unpinned_one(tmp_path):
    import subprocess

    def git(*args, cwd):
        return subprocess.run(["git", "-c", "user.email=t@e", "-c", "user.name=t", *args], cwd=cwd,
                              check=True, capture_output=True, text=True).stdout.strip()

    work = tmp_path / "ext"
    work.mkdir()
    git("init", "-q", cwd=work)
    (work / "install.py").write_text("v1")
    git("add", ".", cwd=work)
    git("commit", "-qm", "v1", cwd=work)
    pinned = git("rev-parse", "HEAD", cwd=work)
    (work / "install.py").write_text("v2")
    git("commit", "-qam", "v2", cwd=work)
    script = WEBUI / "install_extensions.sh"
    good = tmp_path / "good.txt"
    good.write_text(f"# comment\n\nmy-ext file://{work} {pinned}\n")
    subprocess.run(["sh", str(script), str(good), str(tmp_path / "out")], check=True, timeout=60)
    assert (tmp_path / "out" / "my-ext" / "install.py").read_text() == "v1"
    bad = tmp_path / "bad.txt"
    bad.write_text(f"other file://{work} main\n")
    result = subprocess.run(["sh", str(script), str(bad), str(tmp_path / "out2")], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode != 0 and "'main' is not a 40-hex commit" in result.stderr
    assert not (tmp_path / "out2" / "other").exists()


def test_extensions_are_checked_out_on_a_named_branch_at_the_pinned_commit(tmp_path):
    """The script runs for real against a local repository: the pinned (older) commit is
    checked out, on a branch (A1111 logs a traceback reading a detached extension's branch)."""
    import subprocess
    repo = tmp_path / "upstream"
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / "install.py").write_text("print('v1')\n")
    subprocess.run([*git, "-C", str(repo), "add", "."], check=True)
    subprocess.run([*git, "-C", str(repo), "commit", "-qm", "v1"], check=True)
    pinned = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True,
                            text=True, check=True).stdout.strip()
    (repo / "install.py").write_text("print('v2')\n")
    subprocess.run([*git, "-C", str(repo), "commit", "-qam", "v2"], check=True)
    listing = tmp_path / "extensions.txt"
    listing.write_text(f"# test\nsome-extension file://{repo} {pinned}\n")
    subprocess.run(["sh", str(WEBUI / "install_extensions.sh"), str(listing), str(tmp_path / "out")],
                   check=True, capture_output=True)
    clone = tmp_path / "out" / "some-extension"
    head = subprocess.run(["git", "-C", str(clone), "rev-parse", "HEAD"], capture_output=True,
                          text=True, check=True).stdout.strip()
    branch = subprocess.run(["git", "-C", str(clone), "symbolic-ref", "--short", "HEAD"],
                            capture_output=True, text=True)
    assert head == pinned
    assert branch.returncode == 0 and branch.stdout.strip(), "detached HEAD"
    assert (clone / "install.py").read_text() == "print('v1')\n"


def _a1111_install_run() -> str:
    stage = STAGES_TEXT()["automatic1111"]
    return next(line for line in stage if "launch.py" in line)


def STAGES_TEXT() -> dict[str, list[str]]:
    """Each stage's instructions as text (continuations joined), by stage name."""
    stages: dict[str, list[str]] = {}
    current = None
    for ins in COMMANDS:
        if ins.cmd.lower() == "from":
            current = ins.value[-1]
            stages[current] = []
        elif current:
            stages[current].append(ins.original)
    return stages


def test_an_a1111_installer_failure_fails_the_build():
    """A1111 and ControlNet's install.py print a failed pip run and carry on: the build
    stayed green with numpy 2 in the venv. The stage greps its installer's log for those
    lines and imports what the image offers."""
    import re as _re
    stage = STAGES_TEXT()["automatic1111"]
    (arg,) = [line for line in stage if "SDFLEET_INSTALL_FAILURES=" in line and line.startswith("ARG")]
    pattern = arg.split("=", 1)[1].strip().strip('"')
    failures = [
        "RuntimeError: Error running install.py for extension /opt/sdfleet/frameworks/automatic1111/extensions/sd-webui-controlnet.",
        "Warning: Failed to install mediapipe, some preprocessors may not work.",
        "RuntimeError: Couldn't install sd-webui-controlnet requirement: mediapipe.",
        "Traceback (most recent call last):",
    ]
    for line in failures:
        assert _re.search(pattern, line), line
    clean = ["Installing requirements", "Launching Web UI with arguments: --exit",
             "Installing sd-webui-controlnet requirement: mediapipe"]
    assert not any(_re.search(pattern, line) for line in clean)
    run = _a1111_install_run()
    assert "| tee /tmp/a1111-install.log" in run
    # `! grep`: a matching line stops the chain, and the RUN fails (bash, pipefail: the tee
    # keeps launch.py's own exit status too).
    assert '&& ! grep -E "$SDFLEET_INSTALL_FAILURES" /tmp/a1111-install.log' in run
    assert any(line.startswith("SHELL") and "pipefail" in line for line in stage)
    assert "import numpy, skimage, cv2, mediapipe.python.solutions.hands" in run


def test_no_stage_installs_xformers():
    """xformers was pinned but never installed (A1111 installs it only with --xformers): the
    images use PyTorch's SDP attention, and A1111 is told so; the constraint is a hold."""
    for run in runs_of(COMMANDS):
        assert "xformers" not in run.replace("--opt-sdp-attention", ""), run
    assert "--xformers" not in (WEBUI / "sdfleet_webui" / "frameworks.py").read_text()
    for framework in ("automatic1111", "sdnext", "comfyui"):
        assert "xformers" in constraints(framework)   # held at the torch build's version


def test_a1111_build_tools_are_pinned_before_its_installer_runs():
    """CLIP's setup.py imports pkg_resources: it builds only while setuptools keeps it, so pip,
    setuptools and wheel are held, and installed at those versions before launch.py runs."""
    held = constraints("automatic1111")
    assert held["setuptools"] == "69.5.1" and "pip" in held and "wheel" in held
    run = _a1111_install_run()
    assert run.index("venv/bin/python -m pip install pip setuptools wheel") < run.index("launch.py")


def test_a1111_bakes_what_it_fetches_from_the_hub_and_runs_offline():
    """A1111's first checkpoint load fetched openai/clip-vit-large-patch14's tokenizer and
    config from the Hub; WebUI pods reach DNS only, so generation failed."""
    stage = STAGES_TEXT()["automatic1111"]
    env = env_of(STAGES["automatic1111"])
    assert env["HF_HOME"] == "/opt/sdfleet/hf-home"
    assert env["HF_HUB_OFFLINE"] == "1" and env["TRANSFORMERS_OFFLINE"] == "1"
    bake = next(line for line in stage if "bake_hub_files.py download openai/clip-vit-large-patch14" in line)
    # Proven offline in the build, and readable (and lock-writable) by the pod's user.
    assert ("HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 venv/bin/python /opt/sdfleet/bake_hub_files.py "
            "verify openai/clip-vit-large-patch14") in bake
    assert "chown -R sdfleet:sdfleet /opt/sdfleet/hf-home" in bake
    script = (WEBUI / "bake_hub_files.py").read_text()
    assert "CLIPTokenizer.from_pretrained(repo)" in script and "CLIPTextConfig.from_pretrained(repo)" in script
    # Offline only after the bake: the installer and the bake itself need the network.
    offline_at = next(i for i, line in enumerate(stage) if "HF_HUB_OFFLINE=1 TRANSFORMERS" in line
                      and line.startswith("ENV"))
    assert offline_at > stage.index(bake) > stage.index(_a1111_install_run())
