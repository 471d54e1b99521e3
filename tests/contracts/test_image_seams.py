"""Seam: every container the program defines, on both stacks, runs in its image.

For each container (and each exec probe), its command resolves in the image its reference
names, read from that image's Dockerfile (tests/contracts/image_model.py: the final stage's
ENTRYPOINT/CMD, PATH, ENV, WORKDIR, virtualenvs, COPY'd modules, pip installs per
interpreter); every env name it sets is one that image's programs (or a library installed
for them) read; and each image's env-name module (`<package>/env.py`, what the manifests
take names from) names only variables the image's code reads.
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest

from tests.contracts import image_model as im
from tests.contracts import program_model as pm
from tests.program.conftest import assert_all_resolved
from tools.preview import ROOT, read_stack_config, run_program

IMAGES = ROOT / "images"
DOCKERFILES = {"webui": IMAGES / "webui" / "Dockerfile",
               "router": IMAGES / "router" / "Dockerfile",
               "queue-agent": IMAGES / "queue-agent" / "Dockerfile"}
# Images we do not build: the container must leave their command and env alone.
EXTERNAL = {"registry.k8s.io/pause": "the pause container: its own entrypoint, no env"}
ENV_MODULES = {"webui": IMAGES / "webui" / "sdfleet_webui" / "env.py",
               "router": IMAGES / "router" / "sdfleet_router" / "env.py",
               "queue-agent": IMAGES / "queue-agent" / "sdfleet_agent" / "env.py"}

_plans: dict[str, object] = {}


def _plan(stack: str):
    if stack not in _plans:
        result = run_program(read_stack_config(stack), stack=stack, preview=False)
        assert_all_resolved(result)
        _plans[stack] = result
    return _plans[stack]


def _runtime_names(stack: str) -> set[str]:
    aws = read_stack_config(stack)["sdfleet:platform"].get("aws") or {}
    return {r["name"] for r in aws.get("runtimes", [])}


def image_folder(reference: str, stack: str) -> str | None:
    """Which of our images a reference names (None: an external image)."""
    for prefix in EXTERNAL:
        if reference.startswith(prefix + ":") or reference.startswith(prefix + "@"):
            return None
    repository = reference.rsplit("/", 1)[-1].split("@")[0].split(":")[0]
    if repository.startswith("webui") or repository in _runtime_names(stack):
        return "webui"   # one WebUI Dockerfile for every framework / batch runtime
    if repository in DOCKERFILES:
        return repository
    raise AssertionError(f"image {reference!r}: not one of ours ({sorted(DOCKERFILES)}) nor a "
                         f"known external image ({sorted(EXTERNAL)})")


def _pod_specs(value, path=""):
    if isinstance(value, dict):
        if isinstance(value.get("containers"), list):
            yield path, value
        for key, item in value.items():
            yield from _pod_specs(item, f"{path}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _pod_specs(item, f"{path}[{i}]")


def containers(stack: str) -> list[tuple[str, dict]]:
    found = []
    for r in _plan(stack).resources:
        if not r.type.startswith("kubernetes:"):
            continue
        for path, pod in _pod_specs(r.inputs):
            for kind in ("initContainers", "containers"):
                for c in pod.get(kind) or []:
                    found.append((f"{stack}:{r.name}{path}.{kind}[{c['name']}]", c))
    return found


def _cases():
    cases = []
    for stack in ("dev", "aws-dev"):
        for where, container in containers(stack):
            cases.append(pytest.param(stack, container, id=where))
    return cases


def _argv(container: dict, image: im.Image) -> list[str]:
    """Kubernetes: `command` replaces ENTRYPOINT (and drops CMD); `args` replaces CMD."""
    if container.get("command"):
        return list(container["command"]) + list(container.get("args") or [])
    if container.get("args"):
        return image.entrypoint + list(container["args"])
    return image.entrypoint + image.cmd


def _commands(container: dict, image: im.Image) -> list[tuple[str, list[str]]]:
    commands = [("command", _argv(container, image))]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        exec_ = (container.get(probe) or {}).get("exec")
        if exec_:
            commands.append((probe, list(exec_["command"])))
    return commands


def resolve(argv: list[str], container: dict, image: im.Image):
    """(interpreter, program) for a python command, or raise AssertionError saying why it
    cannot run in the image."""
    assert argv, "no command: the image has neither ENTRYPOINT nor CMD and none is given"
    program = argv[0]
    assert image.program_exists(program), (
        f"{program!r} does not exist in {image.dockerfile} (PATH={image.path_dirs()}, "
        f"venvs={sorted(image.venvs)}, interpreters from base/apt="
        f"{sorted(image.system_programs())})")
    interpreter = image.interpreter_of(program)
    if interpreter is None:
        return None, None
    env = {**image.env, **{e["name"]: e.get("value", "") for e in container.get("env") or []}}
    cwd = container.get("workingDir") or image.workdir
    pythonpath = [p for p in env.get("PYTHONPATH", "").split(":") if p]
    rest = argv[1:]
    while rest and rest[0].startswith("-") and rest[0] not in ("-m", "-c"):
        rest = rest[1:]   # interpreter options (-u, -B, ...)
    assert rest, f"{argv}: the interpreter gets no program"
    if rest[0] == "-m":
        assert len(rest) > 1, f"{argv}: -m without a module"
        loaded = pm.load_program(image, [cwd, *pythonpath], rest[1])
    elif rest[0] == "-c":
        loaded = pm.load_program(image, [cwd, *pythonpath], None, code=rest[1])
    else:
        script = rest[0] if rest[0].startswith("/") else f"{cwd}/{rest[0]}"
        source = image.source_of(script)
        assert source is not None and source.is_file(), f"script {script} is not in the image"
        loaded = pm.load_program(image, [str(Path(script).parent), *pythonpath], None,
                                 code=source.read_text())
    assert not isinstance(loaded, str), f"{argv}: {loaded}"
    missing = pm.missing_libraries(image, interpreter, loaded)
    assert not missing, (f"{argv}: {interpreter} lacks {missing}; the Dockerfile installs "
                         f"{sorted(image.installed.get(interpreter, set()))} into it")
    return interpreter, loaded


@pytest.mark.parametrize("stack,container", _cases())
def test_container_runs_in_its_image(stack, container):
    folder = image_folder(container["image"], stack)
    if folder is None:
        assert not container.get("command") and not container.get("args") \
            and not container.get("env"), "an external image's command and env are its own"
        return
    image = im.parse_image(str(DOCKERFILES[folder]))
    interpreters, programs = set(), []
    for what, argv in _commands(container, image):
        try:
            interpreter, program = resolve(argv, container, image)
        except AssertionError as error:
            raise AssertionError(f"{container['name']} {what}: {error}") from None
        if program is not None:
            interpreters.add(interpreter)
            programs.append(program)
    # Every env name set is read by the programs this container runs, or by a library
    # installed for them (botocore reads AWS_REGION, ...).
    read = set().union(*(p.env_reads for p in programs)) if programs else set()
    unread = [e["name"] for e in container.get("env") or []
              if e["name"] not in read and not any(pm.library_reads(image, i, e["name"])
                                                   for i in interpreters)]
    assert not unread, (f"{container['name']} sets {unread}, which no program of "
                        f"{folder} it runs reads (they read {sorted(read)})")


def test_every_container_was_checked():
    names = {c["name"] for stack in ("dev", "aws-dev") for _, c in containers(stack)}
    # the router's verifier and the model sync's fetch are among them
    assert {"webui", "user-sync", "router", "verifier", "fetch", "prepare", "agent"} <= names


# --- the images' env-name modules ---------------------------------------------------------------

def _load(path: Path):
    spec = importlib.util.spec_from_file_location(f"env_names_{path.parent.name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("image", sorted(ENV_MODULES))
def test_env_module_names_only_what_the_image_reads(image):
    path = ENV_MODULES[image]
    tree = ast.parse(path.read_text())
    assert all(isinstance(n, (ast.Expr, ast.Assign)) for n in tree.body), \
        "env.py holds names only (it must stay free to import from the Pulumi program)"
    names = {k: v for k, v in vars(_load(path)).items() if k.isupper()}
    assert names and all(im.ENV_NAME.match(v) for v in names.values()), names
    read = set()
    for source in path.parent.rglob("*.py"):
        if source != path:
            read |= pm.env_reads_of(ast.parse(source.read_text()), pm.env_module_names(path))
    unread = sorted(v for v in names.values() if v not in read)
    assert not unread, f"{path} names {unread}, which no module of the image reads"


def test_components_take_env_names_from_the_images():
    from components.k8s import image_env
    assert image_env.WEBUI.__file__ == str(ENV_MODULES["webui"])
    assert image_env.ROUTER.__file__ == str(ENV_MODULES["router"])


def test_the_model_catches_the_faults_it_guards():
    """The check itself, on the two faults it was written for: the system python of the router
    image lacks the verifier's libraries, and a misspelt env name is refused."""
    router = im.parse_image(str(DOCKERFILES["router"]))
    with pytest.raises(AssertionError, match="lacks"):
        resolve(["python3.11", "-m", "sdfleet_router.verifier"], {}, router)
    webui = im.parse_image(str(DOCKERFILES["webui"]))
    # (The image's venv is first on its PATH now, so `python` resolves; a program the image
    # never installs does not.)
    with pytest.raises(AssertionError, match="does not exist"):
        resolve(["python2", "-m", "sdfleet_webui.fetch"], {}, webui)
    _, program = resolve(webui.entrypoint + webui.cmd, {}, webui)
    assert "SDFLEET_MODELS_ROOT" in program.env_reads
    assert "SDFLEET_MODELS_DIR" not in program.env_reads


def test_the_model_follows_a_multi_stage_build(tmp_path):
    """Dockerfiles change under other hands: a venv built in one stage and copied into the
    final one, with PATH pointing at it, still resolves (and the base's own python, which
    lacks the libraries, is not mistaken for it)."""
    import shutil
    shutil.copy(IMAGES / "queue-agent" / "requirements.txt", tmp_path / "requirements.txt")
    shutil.copytree(IMAGES / "queue-agent" / "sdfleet_agent", tmp_path / "sdfleet_agent")
    (tmp_path / "Dockerfile").write_text(
        "ARG BASE=python:3.11-slim\n"
        "FROM ${BASE} AS build\n"
        "COPY requirements.txt /src/requirements.txt\n"
        "RUN python -m venv /opt/venv && /opt/venv/bin/pip install -r /src/requirements.txt\n"
        "COPY sdfleet_agent /opt/app/sdfleet_agent\n"
        "FROM ${BASE}\n"
        "COPY --from=build /opt/venv /opt/venv\n"
        "COPY --from=build /opt/app /opt/app\n"
        "ENV PATH=/opt/venv/bin:$PATH PYTHONPATH=/opt/app\n"
        'ENTRYPOINT ["python", "-m", "sdfleet_agent"]\n')
    image = im.parse_image(str(tmp_path / "Dockerfile"))
    assert image.path_dirs()[0] == "/opt/venv/bin" and "/usr/bin" in image.path_dirs()
    interpreter, program = resolve(image.entrypoint, {}, image)
    assert interpreter == "/opt/venv" and "QUEUE_URL" in program.env_reads
    with pytest.raises(AssertionError, match="lacks"):
        resolve(["/usr/local/bin/python", "-m", "sdfleet_agent"], {}, image)
