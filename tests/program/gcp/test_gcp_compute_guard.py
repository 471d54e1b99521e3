"""Hand-registered Compute resources (`components/gcp/compute.py`) against the pinned SDK.

`ComputeResource` registers `gcp:compute/<kind>:<Kind>` from plain camelCase props, to keep
`pulumi_gcp.compute` (1 s of imports) out of `make plan`. Nothing in the mock engine checks
those names, so a typo (`healthCheck` for `healthChecks`, `oauth2ClientID`...) would preview
fine and fail only at `pulumi up`. These tests hold every input name, nested ones too, and
every declared output, to the typed classes of the pinned pulumi_gcp (requirements.txt), and
check that `make plan` still never imports the typed module.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from components.gcp import compute as compute_module
from tools.preview import ROOT, read_stack_config, run_program

ARGS_REF = re.compile(r"ForwardRef\('(\w+Args)'\)")


def _sdk():
    import pulumi_gcp.compute as typed  # the import cost is fine in a test

    return typed


def _input_names(args_class: type) -> dict[str, property]:
    """camelCase input name -> property of a pulumi_gcp `...Args` class."""
    return {prop.fget._pulumi_name: prop for prop in vars(args_class).values()
            if isinstance(prop, property) and hasattr(prop.fget, "_pulumi_name")}


def _nested_args(prop: property) -> type | None:
    found = ARGS_REF.search(str(prop.fget.__annotations__.get("return")))
    return getattr(_sdk(), found.group(1)) if found else None


def unknown_input_paths(args_class: type, value: dict, path: str) -> list[str]:
    """Every key of `value` (recursively) that the typed Args class does not define."""
    names = _input_names(args_class)
    problems = []
    for key, item in value.items():
        if key not in names:
            problems.append(f"{path}.{key}")
            continue
        if "Mapping[" in str(names[key].fget.__annotations__.get("return")):
            continue  # a map of plain values (labels...)
        nested = _nested_args(names[key])
        items = item if isinstance(item, list) else [item]
        for i, element in enumerate(items):
            if isinstance(element, dict):
                where = f"{path}.{key}" + (f"[{i}]" if isinstance(item, list) else "")
                if nested is None:
                    problems.append(f"{where} (an object where the SDK takes a plain value)")
                else:
                    problems += unknown_input_paths(nested, element, where)
    return problems


@pytest.fixture(scope="module")
def registered() -> list[tuple[str, str, dict, tuple]]:
    """(kind, name, props, declared outputs) of every ComputeResource the dev stack makes,
    with values resolved (update mode)."""
    seen: list[tuple[str, str, tuple]] = []
    original = compute_module.ComputeResource.__init__

    def recording(self, kind, resource_name, props, outputs=(), opts=None):
        seen.append((kind, resource_name, tuple(outputs)))
        original(self, kind, resource_name, props, outputs, opts)

    compute_module.ComputeResource.__init__ = recording
    try:
        result = run_program(read_stack_config("dev"), preview=False)
    finally:
        compute_module.ComputeResource.__init__ = original
    by_name = {(r.type, r.name): r.inputs for r in result.resources}
    out = []
    for kind, name, outputs in seen:
        token = f"gcp:compute/{kind[0].lower()}{kind[1:]}:{kind}"
        out.append((kind, name, by_name[(token, name)], outputs))
    return out


def test_every_kind_is_used_and_exists_in_the_sdk(registered):
    typed = _sdk()
    used = {kind for kind, *_ in registered}
    # Each kind the module allows is one the program uses (no dead entries to go stale) ...
    assert used == set(compute_module.KINDS)
    for kind in compute_module.KINDS:
        cls = getattr(typed, kind)
        # ... and its token is the SDK's own (`pulumi.CustomResource` type of the class).
        token = f"gcp:compute/{kind[0].lower()}{kind[1:]}:{kind}"
        assert f'"{token}"' in open(sys.modules[cls.__module__].__file__).read(), token


def test_every_input_name_nested_ones_too_is_the_sdks(registered):
    typed = _sdk()
    problems = []
    for kind, name, props, _ in registered:
        assert props, f"{kind} {name} registered no inputs"
        problems += unknown_input_paths(getattr(typed, f"{kind}Args"), props, f"{kind} {name}")
    assert not problems, "input names the pinned pulumi_gcp does not define:\n" + "\n".join(problems)


def test_declared_outputs_are_the_sdks(registered):
    typed = _sdk()
    for kind, name, _, outputs in registered:
        cls = getattr(typed, kind)
        getters = {prop.fget._pulumi_name for prop in vars(cls).values()
                   if isinstance(prop, property) and hasattr(prop.fget, "_pulumi_name")}
        standard = ("name",) if kind in compute_module.NO_SELF_LINK else ("name", "selfLink")
        for key in (*standard, *outputs):
            assert key in getters, f"{kind} {name}: output {key!r} is not one of {kind}'s"


def test_the_checker_catches_a_misspelled_nested_name():
    """The check above can fail: a wrong nested key and a wrong top-level key are reported."""
    typed = _sdk()
    problems = unknown_input_paths(typed.BackendServiceArgs, {
        "iap": {"enabled": True, "oauth2ClientID": "x"}, "healthCheck": "hc",
        "backends": [{"group": "g", "maxRatePerEndpoint": 1}]}, "BackendService b")
    assert problems == ["BackendService b.iap.oauth2ClientID", "BackendService b.healthCheck"]


def test_make_plan_never_imports_the_typed_compute_module():
    script = ("import contextlib, io, sys\n"
              "from tools import plan\n"
              "with contextlib.redirect_stdout(io.StringIO()), "
              "contextlib.redirect_stderr(io.StringIO()):\n"
              "    rc = plan.main(['--stack', 'dev'])\n"
              # pulumi_gcp registers `pulumi_gcp.compute` as a lazy module at import; the
              # typed classes are loaded only when its `_inputs` and resource modules are.
              "loaded = sorted(m for m in sys.modules if m.startswith('pulumi_gcp.compute.'))\n"
              "print(rc, len(loaded), 'pulumi_command.local' in sys.modules)\n")
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    # The plan ran (exit 0, pulumi_command loaded for the builds) without the typed module.
    assert proc.stdout.split() == ["0", "0", "True"]


