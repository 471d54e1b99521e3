"""What a container image built from one of our Dockerfiles holds, read with a real
Dockerfile parser (the `dockerfile` package: BuildKit's own parser), and whether a command
runs in it.

Modelled, generically from whatever the Dockerfile says (other people change them):
- the final stage's ARG and ENV values (with `$VAR` / `${VAR}` expansion), WORKDIR, USER,
  ENTRYPOINT and CMD (exec or shell form);
- files and folders COPY'd or ADD'ed from the build context (and what they came from);
- virtualenvs made in RUN lines (`<python> -m venv <dir>`), and which requirements files and
  packages RUN lines pip-install into which interpreter (a venv's pip, or the image's own);
- the interpreters apt installs (`pythonX.Y`, `python3`, `python-is-python3`) and those an
  official `python:` base image ships.

A command resolves when its program exists in the image (a venv's interpreter, an interpreter
from the base or apt, or a file copied in), and, for `<python> -m <module>` / `-c <code>`,
when the module is on that interpreter's path (cwd, PYTHONPATH, its site-packages) and every
third-party import of the module (and of the image's own modules it imports) is installed
into that same interpreter.
"""

from __future__ import annotations

import copy
import posixpath
import re
import shlex
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import dockerfile

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
SYSTEM = "<image's own python>"
PYTHON_NAMES = re.compile(r"^python(3(\.[0-9]+)?)?$")
ENV_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")


def _normalise(dist: str) -> str:
    return re.sub(r"[-_.]+", "-", dist).lower()


def _expand(text: str, values: dict[str, str]) -> str:
    def one(m: re.Match) -> str:
        name = m.group(1) or m.group(2)
        return values.get(name, "")
    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?[-+][^}]*)?\}|\$([A-Za-z_][A-Za-z0-9_]*)",
                  one, text)


@dataclass
class Image:
    dockerfile: Path
    base: str = ""
    args: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    workdir: str = "/"
    user: str = ""
    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    copies: dict[str, Path | None] = field(default_factory=dict)   # image path -> context path
    venvs: set[str] = field(default_factory=set)
    # interpreter (a venv dir or SYSTEM) -> normalised distribution names installed into it
    installed: dict[str, set[str]] = field(default_factory=dict)
    apt_programs: set[str] = field(default_factory=set)

    @property
    def context(self) -> Path:
        return self.dockerfile.parent

    def path_dirs(self) -> list[str]:
        return self.env.get("PATH", DEFAULT_PATH).split(":")

    # --- programs ---------------------------------------------------------------------------

    def system_programs(self) -> set[str]:
        """Names on the default PATH that the base image or apt provides."""
        programs = set(self.apt_programs)
        if re.match(r"^(docker\.io/)?(library/)?python:", self.base):
            # Official python images: /usr/local/bin/{python,python3,pip,pip3}.
            programs |= {"python", "python3", "pip", "pip3"}
        return programs

    def interpreter_of(self, program: str) -> str | None:
        """The interpreter a command's program runs: a venv dir, SYSTEM, or None (no such
        python in the image). Non-python programs return None too."""
        if "/" in program:
            directory, name = posixpath.split(posixpath.normpath(program))
            venv = posixpath.dirname(directory)
            if posixpath.basename(directory) == "bin" and venv in self.venvs and \
                    PYTHON_NAMES.match(name):
                return venv
            if directory in ("/usr/bin", "/usr/local/bin") and name in self.system_programs() \
                    and PYTHON_NAMES.match(name):
                return SYSTEM
            return None
        for directory in self.path_dirs():
            venv = posixpath.dirname(directory)
            if posixpath.basename(directory) == "bin" and venv in self.venvs and \
                    PYTHON_NAMES.match(program):
                return venv
            if directory in DEFAULT_PATH.split(":") and program in self.system_programs():
                return SYSTEM if PYTHON_NAMES.match(program) else None
        return None

    def program_exists(self, program: str) -> bool:
        if self.interpreter_of(program) is not None:
            return True
        if "/" in program:
            return posixpath.normpath(program) in self.copies
        return any(posixpath.join(d, program) in self.copies for d in self.path_dirs()) \
            or program in self.system_programs()

    # --- files --------------------------------------------------------------------------------

    def source_of(self, image_path: str) -> Path | None:
        """The build-context path an image path was copied from (through a copied folder)."""
        image_path = posixpath.normpath(image_path)
        for dest, src in sorted(self.copies.items(), key=lambda kv: -len(kv[0])):
            if src is None:
                continue
            if image_path == dest:
                return src
            if image_path.startswith(dest.rstrip("/") + "/") and src.is_dir():
                return src / posixpath.relpath(image_path, dest)
        return None


def _json_or_shell(command) -> list[str]:
    if command.json:
        return list(command.value)
    return ["/bin/sh", "-c", " ".join(command.value)]


def _pip_installs(run: str, image: Image) -> list[tuple[str, str, list[str]]]:
    """(interpreter, 'r'|'pkg', names) for each pip install in a RUN line."""
    found = []
    for m in re.finditer(r"(?:^|[;&|(]\s*|\s)((?:\S*/)?pip3?|(?:\S*/)?python[0-9.]*\s+-m\s+pip)"
                         r"\s+install\b([^;&|]*)", run):
        program = m.group(1).split()[0]
        if program.endswith(("pip", "pip3")) and "/" in program:
            venv = posixpath.dirname(posixpath.dirname(program))
            interpreter = venv if venv in image.venvs else SYSTEM
        elif "/" in program:
            interpreter = image.interpreter_of(program) or SYSTEM
        else:
            interpreter = image.interpreter_of("python" if "pip" in program else program) \
                or SYSTEM
        words = shlex.split(m.group(2))
        i = 0
        while i < len(words):
            word = words[i]
            if word in ("-r", "--requirement") and i + 1 < len(words):
                found.append((interpreter, "r", [words[i + 1]]))
                i += 2
                continue
            if word.startswith("-"):
                i += 2 if word in ("--index-url", "-i", "--extra-index-url", "-c",
                                   "--constraint", "--target", "-t") else 1
                continue
            found.append((interpreter, "pkg", [word]))
            i += 1
    return found


def _requirement_names(path: Path) -> set[str]:
    names = set()
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        names.add(_normalise(re.split(r"[\s<>=!~;\[]", line, 1)[0]))
    return names


@lru_cache(maxsize=None)
def parse_image(dockerfile_path: str, build_args: tuple = ()) -> Image:
    path = Path(dockerfile_path)
    image = Image(dockerfile=path)
    global_args: dict[str, str] = {}
    stages: dict[str, Image] = {}
    overrides = dict(build_args)
    for command in dockerfile.parse_file(str(path)):
        cmd = command.cmd.upper()
        values = {"PATH": DEFAULT_PATH, **global_args, **image.args, **image.env}
        if cmd == "ARG":
            for item in command.value:
                name, has_default, default = item.partition("=")
                if not has_default and image.base and name in global_args:
                    # `ARG NAME` in a stage takes the global ARG's value (Dockerfile reference).
                    default = global_args[name]
                value = overrides.get(name, _expand(default, values))
                (image.args if image.base else global_args)[name] = value
        elif cmd == "FROM":
            # A new stage (the last one is the image); `FROM <stage>` starts from that stage.
            base = _expand(command.value[0], global_args)
            if image.base:
                stages[str(len(stages))] = image
            if base in stages:
                image = copy.deepcopy(stages[base])
            else:
                image = Image(dockerfile=path, base=base)
            if len(command.value) >= 3 and command.value[1].upper() == "AS":
                stages[command.value[2]] = image
        elif cmd == "ENV":
            pairs = list(command.value)
            for name, value in zip(pairs[::2], pairs[1::2]):
                image.env[name] = _expand(value, {"PATH": DEFAULT_PATH, **global_args,
                                                  **image.args, **image.env})
        elif cmd == "WORKDIR":
            image.workdir = posixpath.normpath(posixpath.join(image.workdir,
                                                              _expand(command.value[0], values)))
        elif cmd == "USER":
            image.user = _expand(command.value[0], values)
        elif cmd in ("COPY", "ADD"):
            from_flag = next((f for f in command.flags if f.startswith("--from=")), None)
            from_stage = from_flag is not None
            *sources, dest = [_expand(v, values) for v in command.value]
            dest_abs = posixpath.normpath(posixpath.join(image.workdir, dest))
            as_dir = dest.endswith("/") or dest in (".", "..") or len(sources) > 1
            stage = stages.get(from_flag.split("=", 1)[1]) if from_flag else None
            for src in sources:
                if stage is not None:
                    # From an earlier stage: what it made under src now lives under dest.
                    src_abs = posixpath.normpath(posixpath.join(stage.workdir, src))
                    target = dest_abs if not as_dir else posixpath.join(
                        dest_abs, posixpath.basename(src_abs))
                    for venv in stage.venvs:
                        if venv == src_abs or venv.startswith(src_abs + "/"):
                            moved = target + venv[len(src_abs):]
                            image.venvs.add(moved)
                            image.installed[moved] = set(stage.installed.get(venv, set()))
                    for old_path, source in stage.copies.items():
                        if old_path == src_abs or old_path.startswith(src_abs + "/"):
                            image.copies[target + old_path[len(src_abs):]] = source
                    image.copies.setdefault(target, None)
                    continue
                local = None if from_stage else (image.context / src.rstrip("/"))
                if local is not None and local.is_dir():
                    # `COPY dir dest`: the folder's contents land in dest.
                    image.copies[dest_abs] = local
                else:
                    name = posixpath.basename(src.rstrip("/"))
                    target = posixpath.join(dest_abs, name) if as_dir else dest_abs
                    image.copies[target] = local
        elif cmd == "RUN":
            run = _expand(" ".join(command.value), values)
            for m in re.finditer(r"[\"']?(\S*?python[0-9.]*)[\"']?\s+-m\s+(?:venv|virtualenv)\s+"
                                 r"(?:--?\S+\s+)*(\S+)", run):
                image.venvs.add(posixpath.normpath(m.group(2)))
            for m in re.finditer(r"apt-get\s+install\b([^;&|]*)", run):
                for word in shlex.split(m.group(1)):
                    if re.fullmatch(r"python3(\.[0-9]+)?", word):
                        image.apt_programs.add(word)
                    if word == "python-is-python3":
                        image.apt_programs.add("python")
            for interpreter, kind, names in _pip_installs(run, image):
                bucket = image.installed.setdefault(interpreter, set())
                if kind == "pkg":
                    bucket.add(_normalise(re.split(r"[<>=!~\[;]", names[0], 1)[0]))
                    continue
                req_path = posixpath.normpath(posixpath.join(image.workdir, names[0]))
                source = image.source_of(req_path)
                # A file we cannot trace to the build context (after a `cd`, or fetched in
                # the RUN line) counts as installing nothing: the model errs towards "missing".
                if source is not None and source.is_file():
                    bucket |= _requirement_names(source)
        elif cmd == "ENTRYPOINT":
            image.entrypoint = [_expand(v, values) for v in _json_or_shell(command)]
            image.cmd = []   # Docker: setting ENTRYPOINT resets an inherited CMD
        elif cmd == "CMD":
            image.cmd = [_expand(v, values) for v in _json_or_shell(command)]
    return image


# --- Python programs in an image ------------------------------------------------------------------
