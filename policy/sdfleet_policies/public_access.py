"""Who may call what: no public grantees on functions, Cloud Run or buckets, functions take
internal traffic only, no primitive IAM roles."""

from __future__ import annotations

from typing import Any, Iterable

from .define import resource_policy
from .inputs import as_json, items, read

PUBLIC_MEMBERS = ("allUsers", "allAuthenticatedUsers")
PRIMITIVE_ROLES = ("roles/owner", "roles/editor")

FUNCTION_TYPES = ("gcp:cloudfunctionsv2/function:Function", "gcp:cloudfunctions/function:Function")

# IAM on functions, Cloud Run and buckets, by how the grantee is given.
_PUBLIC_SURFACE_MEMBER = (
    "gcp:cloudfunctions/functionIamMember:FunctionIamMember",
    "gcp:cloudfunctionsv2/functionIamMember:FunctionIamMember",
    "gcp:cloudrun/iamMember:IamMember",
    "gcp:cloudrunv2/serviceIamMember:ServiceIamMember",
    "gcp:cloudrunv2/jobIamMember:JobIamMember",
    "gcp:cloudrunv2/workerPoolIamMember:WorkerPoolIamMember",
    "gcp:storage/bucketIAMMember:BucketIAMMember",
    "gcp:storage/managedFolderIamMember:ManagedFolderIamMember",
)
_PUBLIC_SURFACE_BINDING = tuple(t.replace("Member", "Binding") for t in _PUBLIC_SURFACE_MEMBER)
_PUBLIC_SURFACE_POLICY = tuple(t.replace("Member", "Policy") for t in _PUBLIC_SURFACE_MEMBER)
# Legacy ACLs grant by `entity` (allUsers / allAuthenticatedUsers).
_PUBLIC_SURFACE_ACL = ("gcp:storage/bucketAccessControl:BucketAccessControl",
                       "gcp:storage/defaultObjectAccessControl:DefaultObjectAccessControl",
                       "gcp:storage/objectAccessControl:ObjectAccessControl",
                       "gcp:storage/bucketACL:BucketACL", "gcp:storage/defaultObjectACL:DefaultObjectACL",
                       "gcp:storage/objectACL:ObjectACL")


def _policy_data_bindings(props: Any) -> list[dict]:
    data = as_json(read(props, "policyData"))
    if not isinstance(data, dict):
        return []
    return [b for b in data.get("bindings", []) if isinstance(b, dict)]


def _check_public_members(type_: str, props: Any, _args) -> Iterable[str]:
    grantees: list[Any] = []
    if type_ in _PUBLIC_SURFACE_MEMBER:
        grantees.append(read(props, "member"))
    elif type_ in _PUBLIC_SURFACE_BINDING:
        grantees += items(read(props, "members"))
    elif type_ in _PUBLIC_SURFACE_POLICY:
        grantees += [m for b in _policy_data_bindings(props) for m in b.get("members", [])]
    elif type_ in _PUBLIC_SURFACE_ACL:
        # entity "allUsers", roleEntities "READER:allUsers", predefinedAcl "publicRead"
        grantees += [read(props, "entity"), read(props, "predefinedAcl")]
        grantees += items(read(props, "roleEntities"))
    for grantee in grantees:
        # An unknown grantee is another resource's output (an account's email), never a literal.
        if not isinstance(grantee, str):
            continue
        if any(p.lower() in grantee.lower() for p in PUBLIC_MEMBERS) or grantee in (
                "publicRead", "publicReadWrite", "authenticatedRead"):
            yield f"grants access to '{grantee}': every endpoint authenticates its callers"


def _check_function_ingress(type_: str, props: Any, _args) -> Iterable[str]:
    if type_ == "gcp:cloudfunctionsv2/function:Function":
        ingress = read(props, "serviceConfig", "ingressSettings", default="ALLOW_ALL")
    else:
        ingress = read(props, "ingressSettings", default="ALLOW_ALL")
    if ingress != "ALLOW_INTERNAL_ONLY":
        yield (f"ingressSettings is {ingress!r} (the provider default is ALLOW_ALL); "
               "functions take only internal traffic: ALLOW_INTERNAL_ONLY")


def _is_gcp_iam(type_: str) -> bool:
    return type_.startswith("gcp:") and "iam" in type_.lower() and not type_.split(":")[-1].startswith("get")


def _check_primitive_roles(type_: str, props: Any, _args) -> Iterable[str]:
    roles = [read(props, "role")] + [b.get("role") for b in _policy_data_bindings(props)]
    for role in roles:
        if role in PRIMITIVE_ROLES:
            yield f"grants the primitive role {role}: grant the narrow predefined roles instead"


POLICIES = [
    resource_policy(
        "no-public-invokers",
        "No IAM member allUsers/allAuthenticatedUsers on Cloud Functions, Cloud Run or buckets.",
        _PUBLIC_SURFACE_MEMBER + _PUBLIC_SURFACE_BINDING + _PUBLIC_SURFACE_POLICY + _PUBLIC_SURFACE_ACL,
        _check_public_members),
    resource_policy(
        "functions-internal-ingress",
        "Cloud Functions take internal traffic only (ingressSettings ALLOW_INTERNAL_ONLY).",
        FUNCTION_TYPES, _check_function_ingress),
    resource_policy(
        "no-primitive-roles",
        "No primitive IAM roles (roles/owner, roles/editor).",
        _is_gcp_iam, _check_primitive_roles),
]
