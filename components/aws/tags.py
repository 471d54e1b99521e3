"""Cost-allocation tags and IAM policy documents shared by the AWS components."""

from __future__ import annotations

from typing import Any

import pulumi


def tags_for(labels: dict[str, str], name: str, **extra: str) -> dict[str, str]:
    """The platform's labels as tags, plus a `Name` (the console shows it) and any extras."""
    return {**labels, "Name": name, **extra}


def policy_json(statements: list[dict[str, Any]]) -> pulumi.Output[str]:
    """An IAM policy document; statements may hold Outputs (ARNs of resources made here)."""
    return pulumi.Output.json_dumps({"Version": "2012-10-17", "Statement": statements})


def allow(actions: list[str], resources: list[Any], **condition: dict) -> dict[str, Any]:
    statement: dict[str, Any] = {"Effect": "Allow", "Action": actions, "Resource": resources}
    if condition:
        statement["Condition"] = condition
    return statement


def trust(service: str, actions: tuple[str, ...] = ("sts:AssumeRole",)) -> pulumi.Output[str]:
    """A trust policy letting one AWS service principal assume the role."""
    return policy_json([{"Effect": "Allow", "Principal": {"Service": service},
                         "Action": list(actions)}])


# EKS Pod Identity assumes roles with session tags (namespace, service account, cluster).
POD_IDENTITY_PRINCIPAL = "pods.eks.amazonaws.com"
POD_IDENTITY_ACTIONS = ("sts:AssumeRole", "sts:TagSession")
