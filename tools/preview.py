"""Run the real Pulumi program under Pulumi's mock engine and record everything it registers.

Used by `make plan` (tools/plan.py) and by tests/program. No credentials, no Pulumi CLI:
`pulumi.runtime.set_mocks` replaces the engine, `RecordingMonitor` keeps every registration
(type, name, parent, inputs, provider, dependencies) and refuses duplicate URNs, and
`PlanMocks` answers resources and invokes with the plausible values of tools/preview_data.py.

Preview mode behaves like `pulumi preview` of a new stack: ids and computed outputs are
unknown, so stack outputs that depend on them are marked "known after deployment". Update
mode behaves like `pulumi up`: every value resolves, which tests use to prove that no
`apply` silently never ran.
"""

from __future__ import annotations

import json
import runpy
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
from google.protobuf import json_format
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc, settings
from pulumi.runtime.stack import run_in_stack
from pulumi.runtime.sync_await import _sync_await

from tools import preview_data

ROOT = Path(__file__).resolve().parent.parent
PROJECT = "sdfleet"

UNKNOWN_MARK = "(known after deployment)"
SECRET_MARK = "[secret]"


class DuplicateUrnError(Exception):
    pass


@dataclass
class Registration:
    urn: str
    type: str
    name: str
    parent: str | None
    inputs: dict
    provider: str | None
    custom: bool
    dependencies: list[str]
    id: str | None = None
    # property name -> URNs its value came from (which queue a redrive policy belongs to...)
    property_dependencies: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class PlanResult:
    stack: str
    preview: bool
    resources: list[Registration]
    outputs: dict[str, Any]
    invokes: list[str] = field(default_factory=list)

    def of_type(self, type_: str) -> list[Registration]:
        return [r for r in self.resources if r.type == type_]

    def one(self, type_: str, name_contains: str = "") -> Registration:
        found = [r for r in self.of_type(type_) if name_contains in r.name]
        if len(found) != 1:
            raise AssertionError(f"expected one {type_} named *{name_contains}*, found "
                                 f"{[r.name for r in found]}")
        return found[0]

    def by_urn(self, urn: str) -> Registration:
        return next(r for r in self.resources if r.urn == urn)

    def children(self, urn: str) -> list[Registration]:
        return [r for r in self.resources if r.parent == urn]


def _plain(value: Any) -> Any:
    """Resource inputs as JSON-able values: secrets and unknowns marked, not revealed."""
    if isinstance(value, dict):
        if value.get(rpc._special_sig_key) == rpc._special_secret_sig:
            return SECRET_MARK
        if rpc._special_sig_key in value:  # resource references, assets, archives
            sig = value[rpc._special_sig_key]
            if sig == rpc._special_resource_sig:
                return {"resourceRef": value.get("urn")}
            return {"asset": value.get("path") or value.get("uri") or "(inline)"}
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if value == rpc.UNKNOWN:
        return UNKNOWN_MARK
    if isinstance(value, float) and value.is_integer():
        return int(value)  # the mock engine hands numbers back as floats
    return value


def _struct_to_plain(struct) -> dict:
    return _plain(json_format.MessageToDict(struct)) if struct is not None else {}


class RecordingMonitor(pulumi_mocks.MockMonitor):
    def __init__(self, mocks: "PlanMocks"):
        super().__init__(mocks)
        self.registrations: dict[str, Registration] = {}
        self.order: list[str] = []
        self.stack_outputs: dict[str, Any] = {}
        self.duplicates: list[str] = []
        self.claimed: set[str] = set()
        self.lock = threading.Lock()

    def RegisterResource(self, request):  # noqa: N802 (gRPC API)
        urn = self.make_urn(request.parent, request.type, request.name)
        if request.type == "pulumi:pulumi:Stack":
            return super().RegisterResource(request)
        # Registrations arrive on executor threads: claim the URN atomically.
        with self.lock:
            duplicate = urn in self.claimed
            self.claimed.add(urn)
            if duplicate:
                # Kept as well as raised: the runtime raises this on an executor thread,
                # and whether it reaches the program depends on timing.
                self.duplicates.append(urn)
        if duplicate:
            raise DuplicateUrnError(f"duplicate URN {urn}: two resources share a type and name")
        response = super().RegisterResource(request)
        self.registrations[urn] = Registration(
            urn=urn, type=request.type, name=request.name, parent=request.parent or None,
            inputs=_struct_to_plain(request.object), provider=request.provider or None,
            custom=bool(request.custom), dependencies=list(request.dependencies),
            id=response.id or None,
            property_dependencies={k: list(v.urns) for k, v in request.propertyDependencies.items()})
        self.order.append(urn)
        return response

    def RegisterResourceOutputs(self, request):  # noqa: N802 (gRPC API)
        if request.urn.endswith("::pulumi:pulumi:Stack::" + f"{PROJECT}-{pulumi.get_stack()}"):
            self.stack_outputs = _struct_to_plain(request.outputs)
        return super().RegisterResourceOutputs(request)


class PlanMocks(pulumi.runtime.Mocks):
    def __init__(self, preview: bool, project_id: str, region: str):
        self.preview = preview
        self.project_id = project_id
        self.region = region
        self.invokes: list[str] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        state = dict(args.inputs)
        computed = preview_data.computed_outputs(args.typ, args.name, args.inputs,
                                                 self.project_id, self.region)
        if self.preview:
            # Like a preview of a new stack: no id, and whatever the provider computes
            # (addresses, emails, endpoints) unknown; input values stay known.
            unknown = {k: rpc.UNKNOWN for k, v in computed.items() if state.get(k) != v}
            return "", {**state, **unknown}
        return f"{args.name}-id", {**state, **computed}

    def call(self, args: pulumi.runtime.MockCallArgs):
        self.invokes.append(args.token)
        return preview_data.invoke(args.token, args.args, self.project_id, self.region)


def stack_file(stack: str) -> Path:
    return ROOT / f"Pulumi.{stack}.yaml"


def read_stack_config(stack: str, path: str | Path | None = None) -> dict[str, Any]:
    """`config:` of Pulumi.<stack>.yaml (or `path`); raises FileNotFoundError with the path,
    ConfigError for a key given twice."""
    path = Path(path) if path else stack_file(stack)
    if not path.exists():
        raise FileNotFoundError(f"no stack file {path.name} (stacks here: "
                                f"{', '.join(sorted(p.name[7:-5] for p in ROOT.glob('Pulumi.*.yaml')))})")
    from components.config import read_stack_yaml

    data = read_stack_yaml(path.read_text(), path.name) or {}   # refuses duplicate keys
    return data.get("config") or {}


def flatten_config(config: dict[str, Any]) -> tuple[dict[str, str], list[str]]:
    """Pulumi config map -> the engine's flat string form, plus which keys are secrets.

    Secure values cannot be decrypted offline; they become a placeholder, still secret.
    """
    flat, secrets = {}, []
    for key, value in config.items():
        if isinstance(value, dict) and set(value) == {"secure"}:
            flat[key] = "offline-preview-placeholder"
            secrets.append(key)
        elif isinstance(value, str):
            flat[key] = value
        else:
            flat[key] = json.dumps(value)
    return flat, secrets


def run_program(config: dict[str, Any], *, stack: str = "dev", preview: bool = True,
                program: Path | None = None) -> PlanResult:
    """Run __main__.py (or `program`) with `config` (a `config:` map) under mocks."""
    project_id = str(config.get("gcp:project", "example-project"))
    region = str(config.get("gcp:region") or config.get("aws:region") or "us-central1")
    mocks = PlanMocks(preview, project_id, region)
    monitor = RecordingMonitor(mocks)
    settings.reset_options(project=PROJECT, stack=stack, preview=preview)
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=preview, monitor=monitor)
    # set_mocks makes a root stack for unit tests; run_in_stack below makes the real one,
    # which is the one that registers the exported outputs.
    settings.ROOT.set(None)
    flat, secret_keys = flatten_config(config)
    pulumi.runtime.set_all_config(flat, secret_keys)

    path = str(program or ROOT / "__main__.py")

    def run_main():
        runpy.run_path(path, run_name="__pulumi_program__")

    try:
        _sync_await(run_in_stack(run_main))
        if monitor.duplicates:
            raise DuplicateUrnError(f"duplicate URN {monitor.duplicates[0]}: two resources "
                                    "share a type and name")
    except BaseException as exc:
        if monitor.duplicates and not isinstance(exc, DuplicateUrnError):
            raise DuplicateUrnError(f"duplicate URN {monitor.duplicates[0]}: two resources "
                                    "share a type and name") from exc
        # Tests check that a bad config stops the program before anything is registered.
        exc.sdfleet_registrations = [monitor.registrations[u] for u in monitor.order]
        raise
    resources = [monitor.registrations[u] for u in monitor.order]
    return PlanResult(stack=stack, preview=preview, resources=resources,
                      outputs=monitor.stack_outputs, invokes=mocks.invokes)


def ensure_root_on_path() -> None:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
