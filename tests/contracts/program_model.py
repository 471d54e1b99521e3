"""The Python side of an image model: which distributions a program imports (their closure from
installed metadata), which environment names it reads, and whether the interpreter that runs it
has them. Used with image_model (what the image holds) by test_image_seams."""

from __future__ import annotations

import ast
import importlib.metadata
import posixpath
import re
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from tests.contracts.image_model import ENV_NAME, Image, _normalise


@lru_cache(maxsize=1)
def _import_to_dists() -> dict[str, set[str]]:
    return {name: {_normalise(d) for d in dists}
            for name, dists in importlib.metadata.packages_distributions().items()}


def _requires(dist: str) -> set[str]:
    try:
        requirements = importlib.metadata.requires(dist) or []
    except importlib.metadata.PackageNotFoundError:
        return set()
    return {_normalise(re.split(r"[\s<>=!~;\[(]", r, 1)[0]) for r in requirements
            if "extra ==" not in r}


def closure(dists: set[str]) -> set[str]:
    """Distributions and everything they require (pip installs those too)."""
    seen, todo = set(), list(dists)
    while todo:
        dist = todo.pop()
        if dist in seen:
            continue
        seen.add(dist)
        todo.extend(_requires(dist) - seen)
    return seen


@dataclass
class PythonProgram:
    """Modules of the image a program loads, with their imports and env names read."""
    files: dict[str, Path]            # module name -> source in the build context
    third_party: set[str]             # top-level import names outside the stdlib and image
    env_reads: set[str]


def _module_file(image: Image, search: list[str], module: str) -> Path | None:
    parts = module.split(".")
    for root in search:
        for candidate in (posixpath.join(root, *parts) + ".py",
                          posixpath.join(root, *parts, "__init__.py")):
            source = image.source_of(candidate)
            if source is not None and source.is_file():
                return source
    return None


def env_module_names(path: Path) -> dict[str, str]:
    """An image's env-name module (`<package>/env.py`): constant -> env name."""
    if not path.is_file():
        return {}
    return {t.id: n.value.value for n in ast.parse(path.read_text()).body
            if isinstance(n, ast.Assign) and isinstance(n.value, ast.Constant)
            and isinstance(n.value.value, str) for t in n.targets if isinstance(t, ast.Name)}


def env_reads_of(tree: ast.AST, env_names: dict[str, str] | None = None) -> set[str]:
    """Env names a module reads: `<anything env/get>("NAME", ...)`, the same with the name
    taken from the package's env module (`env.CONSTANT`, resolved through `env_names`),
    `x["NAME"]`, and the keys of a module-level dict whose name says ENV."""
    names = set()
    env_names = env_names or {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Attribute) \
                and isinstance(node.args[0].value, ast.Name) and node.args[0].value.id == "env" \
                and node.args[0].attr in env_names:
            names.add(env_names[node.args[0].attr])
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            callee = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if (callee in ("get", "getenv", "pop", "setdefault") or "env" in callee.lower()) \
                    and isinstance(node.args[0].value, str) and ENV_NAME.match(node.args[0].value):
                names.add(node.args[0].value)
        elif isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant) and \
                isinstance(node.slice.value, str) and ENV_NAME.match(node.slice.value):
            names.add(node.slice.value)
        elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict) and any(
                isinstance(t, ast.Name) and "ENV" in t.id.upper() for t in node.targets):
            names |= {k.value for k in node.value.keys
                      if isinstance(k, ast.Constant) and isinstance(k.value, str)}
    return names


def load_program(image: Image, search: list[str], module: str | None,
                 code: str | None = None) -> PythonProgram | str:
    """The program `python -m module` (or `-c code`) loads, or why it cannot load."""
    files: dict[str, Path] = {}
    third_party: set[str] = set()
    env: set[str] = set()
    todo: list[tuple[str, ast.AST | None]] = []
    if code is not None:
        todo.append(("<-c>", ast.parse(code)))
    else:
        parts = module.split(".")
        for i in range(1, len(parts) + 1):   # parents are imported first
            todo.append((".".join(parts[:i]), None))
        if _module_file(image, search, module + ".__main__") is not None:
            todo.append((module + ".__main__", None))
    while todo:
        name, tree = todo.pop()
        if name in files:
            continue
        if tree is None:
            source = _module_file(image, search, name)
            if source is None:
                return f"module {name!r} is not in the image on the interpreter's path {search}"
            files[name] = source
            tree = ast.parse(source.read_text())
        source = files.get(name)
        env |= env_reads_of(tree, env_module_names(source.parent / "env.py") if source else None)
        package = name if files.get(name, Path()).name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(tree):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[:len(base) - node.level + 1] if node.level > 1 else base
                    prefix = ".".join(base)
                    mod = f"{prefix}.{node.module}" if node.module else prefix
                else:
                    mod = node.module or ""
                targets = [mod] + [f"{mod}.{a.name}" for a in node.names]
            for target in targets:
                top = target.split(".")[0]
                if top == "__future__" or top in sys.stdlib_module_names:
                    continue
                if _module_file(image, search, top) is not None:
                    if _module_file(image, search, target) is not None:
                        todo.append((target, None))
                    continue
                third_party.add(top)
    return PythonProgram(files, third_party, env)


def missing_libraries(image: Image, interpreter: str, program: PythonProgram) -> list[str]:
    installed = closure(image.installed.get(interpreter, set()))
    missing = []
    for name in sorted(program.third_party):
        dists = _import_to_dists().get(name, set())
        if not dists & installed:
            missing.append(f"{name} (from {'/'.join(sorted(dists)) or 'no known distribution'})")
    return missing


def library_reads(image: Image, interpreter: str, name: str) -> bool:
    """Whether a library installed into the interpreter reads the env name (its installed
    source holds the literal), e.g. botocore reads AWS_REGION."""
    for dist in sorted(closure(image.installed.get(interpreter, set()))):
        try:
            files = importlib.metadata.files(dist) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        for f in files:
            if f.suffix == ".py" and _file_mentions(str(f.locate()), name):
                return True
    return False


@lru_cache(maxsize=None)
def _file_text(path: str) -> str:
    try:
        return Path(path).read_text(errors="replace")
    except OSError:
        return ""


def _file_mentions(path: str, name: str) -> bool:
    text = _file_text(path)
    return f"'{name}'" in text or f'"{name}"' in text
