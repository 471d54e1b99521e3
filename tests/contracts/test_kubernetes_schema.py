"""Every Kubernetes object the program renders, on both stacks, validates strictly against
the Kubernetes schema of a version the clusters run (kubernetes-validate, pinned in
tests/requirements.txt).

Strict: a misspelt or misplaced field (which the API server would silently drop, or refuse
under `fieldValidation=Strict`) fails, as does a wrong type. Custom resources are checked on
their Kubernetes-typed parts: an Agones Fleet's pod template is a core PodTemplateSpec, a
KEDA ScaledJob's `jobTargetRef` is a batch/v1 JobSpec. The rest of each custom resource is
checked against its upstream CRD by the upstream-schema check each developer runs before a
change lands (it is not part of this repository).
"""

from __future__ import annotations

import json

import kubernetes_validate
import pytest

from tests.program.conftest import assert_all_resolved
from tools.preview import read_stack_config, run_program

# GKE: the REGULAR channel (Pulumi.dev.yaml) runs 1.33 and later; both ends are checked.
GKE_VERSIONS = ("1.33", "1.35")


def eks_versions() -> tuple[str, ...]:
    return (read_stack_config("aws-dev")["sdfleet:platform"]["aws"]["cluster"]["kubernetesVersion"],)


def _pod_template(template: dict) -> dict:
    return {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "embedded"},
            "template": template}


def _job(spec: dict) -> dict:
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "embedded"},
            "spec": spec}


# Custom resources: kind -> the Kubernetes-typed parts inside them, as objects to validate.
EMBEDDED = {
    # agones.dev/v1 Fleet: spec.template.spec.template is a corev1.PodTemplateSpec
    # (agones pkg/apis/agones/v1/gameserver.go, GameServerSpec.Template).
    ("agones.dev/v1", "Fleet"): lambda o: [_pod_template(o["spec"]["template"]["spec"]["template"])],
    ("agones.dev/v1", "GameServer"): lambda o: [_pod_template(o["spec"]["template"])],
    # keda.sh/v1alpha1 ScaledJob: jobTargetRef is a batchv1.JobSpec (keda apis/keda/v1alpha1
    # scaledjob_types.go, ScaledJobSpec.JobTargetRef).
    ("keda.sh/v1alpha1", "ScaledJob"): lambda o: [_job(o["spec"]["jobTargetRef"])],
}
# Custom resources with no Kubernetes-typed part (their own CRD schema is the whole check).
NO_EMBEDDED = {
    ("autoscaling.agones.dev/v1", "FleetAutoscaler"), ("keda.sh/v1alpha1", "ScaledObject"),
    ("keda.sh/v1alpha1", "TriggerAuthentication"), ("karpenter.sh/v1", "NodePool"),
    ("karpenter.k8s.aws/v1", "EC2NodeClass"), ("secrets-store.csi.x-k8s.io/v1", "SecretProviderClass"),
    ("cloud.google.com/v1", "BackendConfig"), ("networking.gke.io/v1beta1", "FrontendConfig"),
    ("networking.gke.io/v1", "ManagedCertificate"),
}
NOT_OBJECTS = {"kubernetes:helm.sh/v3:Release", "pulumi:providers:kubernetes"}


def _objects(result) -> list[tuple[str, dict]]:
    out = []
    for r in result.resources:
        if not r.custom or not r.type.startswith("kubernetes:") or r.type in NOT_OBJECTS:
            continue
        obj = {k: v for k, v in r.inputs.items() if k != "status"}
        out.append((r.name, obj))
    return out


_plans: dict[str, object] = {}


def _plan(stack: str):
    if stack not in _plans:
        result = run_program(read_stack_config(stack), stack=stack, preview=False)
        assert_all_resolved(result)
        _plans[stack] = result
    return _plans[stack]


def _is_builtin(obj: dict, version: str) -> bool:
    try:
        kubernetes_validate.validate({"apiVersion": obj["apiVersion"], "kind": obj["kind"],
                                      "metadata": {"name": "probe"}}, version, strict=False)
    except kubernetes_validate.SchemaNotFoundError:
        return False
    except kubernetes_validate.ValidationError:
        return True
    return True


def _problems(stack: str, versions: tuple[str, ...]) -> tuple[list[str], int]:
    problems, checked = [], 0
    for name, obj in _objects(_plan(stack)):
        key = (obj["apiVersion"], obj["kind"])
        for version in versions:
            if _is_builtin(obj, version):
                targets = [obj]
            elif key in EMBEDDED:
                targets = EMBEDDED[key](obj)
            elif key in NO_EMBEDDED:
                continue
            else:
                problems.append(f"{name}: {key} is neither a Kubernetes kind of {version} nor a "
                                "custom resource this test knows (add it to EMBEDDED or "
                                "NO_EMBEDDED)")
                continue
            for target in targets:
                checked += 1
                try:
                    kubernetes_validate.validate(target, version, strict=True)
                except kubernetes_validate.ValidationError as error:
                    problems.append(f"{name} ({key[1]}, k8s {version}): {error.message} at "
                                    f"{'.'.join(map(str, error.path))}")
    return problems, checked


@pytest.mark.parametrize("stack", ["dev", "aws-dev"])
def test_every_object_validates_strictly(stack):
    versions = GKE_VERSIONS if stack == "dev" else eks_versions()
    problems, checked = _problems(stack, versions)
    assert not problems, "\n".join(problems)
    assert checked >= 8 * len(versions), checked   # the objects were really there


def test_strict_validation_catches_a_misplaced_field():
    """The check itself: a field the API server would drop fails here."""
    name, fleet = next((n, o) for n, o in _objects(_plan("dev")) if o["kind"] == "Fleet")
    broken = json.loads(json.dumps(fleet))
    container = broken["spec"]["template"]["spec"]["template"]["spec"]["containers"][0]
    container["env"].append({"name": "X", "valueFrom": {"secretRef": {"name": "s"}}})
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(EMBEDDED[("agones.dev/v1", "Fleet")](broken)[0], "1.33",
                                     strict=True)
