"""The one place with offline answers: invoke results and the outputs a provider would compute.

All values are plausible and obviously examples (documentation IP ranges, project number
123456789012, account 123456789012). Only `update` mode (like `pulumi up`) uses the computed
outputs; `preview` leaves them unknown, as a real preview of a new stack does.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

PROJECT_NUMBER = "123456789012"
AWS_ACCOUNT = "123456789012"
FAKE_CA_PEM = ("-----BEGIN CERTIFICATE-----\nMIIBoffline+preview+only+not+a+real+certificate\n"
               "-----END CERTIFICATE-----\n")
FAKE_CA_B64 = base64.b64encode(FAKE_CA_PEM.encode()).decode()


def _suffix(name: str) -> str:
    return hashlib.sha1(name.encode()).hexdigest()[:7]


def invoke(token: str, args: dict, project: str, region: str) -> dict:
    """Answers to data-source invokes (`get_project`, `get_zones`, `get_caller_identity`...)."""
    if token == "gcp:organizations/getProject:getProject":
        return {"projectId": args.get("projectId") or project, "number": PROJECT_NUMBER,
                "name": project, "id": f"projects/{project}"}
    if token == "gcp:organizations/getClientConfig:getClientConfig":
        return {"project": project, "region": region, "zone": f"{region}-a",
                "accessToken": "offline-preview", "id": "offline"}
    if token == "gcp:compute/getZones:getZones":
        return {"names": [f"{region}-a", f"{region}-b", f"{region}-c"], "project": project,
                "region": args.get("region") or region, "id": region}
    if token == "aws:index/getCallerIdentity:getCallerIdentity":
        return {"accountId": AWS_ACCOUNT, "arn": f"arn:aws:iam::{AWS_ACCOUNT}:user/preview",
                "userId": "AIDAPREVIEW", "id": AWS_ACCOUNT}
    if token == "aws:index/getRegion:getRegion":
        return {"name": region, "region": region, "id": region, "description": region,
                "endpoint": f"ec2.{region}.amazonaws.com"}
    if token == "aws:index/getPartition:getPartition":
        return {"partition": "aws", "dnsSuffix": "amazonaws.com", "id": "aws",
                "reverseDnsPrefix": "com.amazonaws"}
    if token == "aws:index/getAvailabilityZones:getAvailabilityZones":
        names = [f"{region}{z}" for z in "abc"]
        return {"names": names, "zoneIds": [f"use1-az{i}" for i in range(1, 4)], "id": region}
    if token == "aws:iam/getPolicyDocument:getPolicyDocument":
        return {"json": json.dumps(_policy_document(args)), "id": "policy"}
    raise NotImplementedError(f"offline preview has no answer for invoke {token}; "
                              "add one to tools/preview_data.py")


def _policy_document(args: dict) -> dict:
    statements = []
    for s in args.get("statements") or []:
        statement: dict[str, Any] = {"Effect": s.get("effect", "Allow")}
        if s.get("actions"):
            statement["Action"] = s["actions"]
        if s.get("resources"):
            statement["Resource"] = s["resources"]
        for p in s.get("principals") or []:
            statement.setdefault("Principal", {})[p["type"]] = p["identifiers"]
        for c in s.get("conditions") or []:
            statement.setdefault("Condition", {}).setdefault(c["test"], {})[c["variable"]] = c["values"]
        statements.append(statement)
    return {"Version": "2012-10-17", "Statement": statements}


def computed_outputs(typ: str, name: str, inputs: dict, project: str, region: str) -> dict:
    """Outputs a provider computes on create, for update mode."""
    out: dict[str, Any] = {}
    generated = f"{name}-{_suffix(name)}"
    if typ.startswith("gcp:"):
        out["name"] = inputs.get("name", generated)
        out["selfLink"] = f"https://www.googleapis.com/compute/v1/projects/{project}/{name}"
        out["project"] = project
    if typ == "gcp:container/cluster:Cluster":
        out.update(endpoint="198.51.100.20", masterAuth={"clusterCaCertificate": FAKE_CA_B64},
                   privateClusterConfig={**inputs.get("privateClusterConfig", {}),
                                         "privateEndpoint": "172.16.0.2",
                                         "publicEndpoint": "198.51.100.20"},
                   id=f"projects/{project}/locations/{region}/clusters/{inputs.get('name', name)}")
    elif typ == "gcp:serviceaccount/account:Account":
        account = inputs.get("accountId", name)
        out.update(email=f"{account}@{project}.iam.gserviceaccount.com",
                   member=f"serviceAccount:{account}@{project}.iam.gserviceaccount.com",
                   uniqueId="100000000000000000000",
                   name=f"projects/{project}/serviceAccounts/{account}@{project}.iam.gserviceaccount.com")
    elif typ == "gcp:compute/globalAddress:GlobalAddress":
        out["address"] = "203.0.113.10"
        if inputs.get("purpose") == "VPC_PEERING":
            out["address"] = inputs.get("address", "10.30.0.0")
    elif typ == "gcp:compute/backendService:BackendService":
        # The server-assigned number the IAP audience is built from (below 2**53: the mock
        # engine passes numbers as floats).
        out["generatedId"] = 4_503_599_627_370_497
    elif typ == "command:local:Command":
        env = inputs.get("environment")
        env = env if isinstance(env, dict) else {}   # unknown as a whole in a preview
        if "SDFLEET_NEG_NAME" in env:  # the load balancer's wait for GKE's NEGs
            out["stdout"] = "\n".join(
                f"https://www.googleapis.com/compute/v1/projects/{project}/zones/{region}-{z}/"
                f"networkEndpointGroups/{env['SDFLEET_NEG_NAME']}" for z in "ab")
        else:
            out["stdout"] = ""
        out["stderr"] = ""
    elif typ == "gcp:compute/address:Address":
        out["address"] = "10.10.0.50"
    elif typ == "gcp:redis/instance:Instance":
        out.update(host="10.30.0.4", port=6378, readEndpoint="10.30.0.5",
                   serverCaCerts=[{"cert": FAKE_CA_PEM}], authString="offline-preview")
    elif typ == "gcp:filestore/instance:Instance":
        out["networks"] = [{**n, "ipAddresses": ["10.30.1.2"]} for n in inputs.get("networks", [])]
    elif typ == "gcp:cloudfunctionsv2/function:Function":
        fn = inputs.get("name", name)
        out.update(url=f"https://{region}-{project}.cloudfunctions.net/{fn}",
                   serviceConfig={**inputs.get("serviceConfig", {}),
                                  "uri": f"https://{fn}-{_suffix(fn)}-uc.a.run.app"})
    elif typ == "gcp:artifactregistry/repository:Repository":
        out["registryUri"] = f"{region}-docker.pkg.dev/{project}/{inputs.get('repositoryId', name)}"
    elif typ == "gcp:secretmanager/secret:Secret":
        out["name"] = f"projects/{PROJECT_NUMBER}/secrets/{inputs.get('secretId', name)}"
    elif typ == "gcp:secretmanager/secretVersion:SecretVersion":
        out["name"] = f"projects/{PROJECT_NUMBER}/secrets/{name}/versions/1"
    elif typ == "gcp:storage/bucket:Bucket":
        out["url"] = f"gs://{inputs.get('name', generated)}"
    elif typ.startswith("aws:"):
        out.update(_aws_outputs(typ, name, inputs, region, generated))
    return out


def _aws_outputs(typ: str, name: str, inputs: dict, region: str, generated: str) -> dict:
    """What AWS computes on create: ARNs in each service's own shape, URLs, ids."""
    service = typ.split(":")[1].split("/")[0]
    resource_name = inputs.get("name", generated)
    out: dict[str, Any] = {"name": resource_name,
                           "arn": f"arn:aws:{service}:{region}:{AWS_ACCOUNT}:{resource_name}"}
    if typ == "aws:eks/cluster:Cluster":
        out.update(endpoint="https://ABCDEF0123456789.gr7.us-east-1.eks.amazonaws.com",
                   arn=f"arn:aws:eks:{region}:{AWS_ACCOUNT}:cluster/{resource_name}",
                   certificateAuthority={"data": FAKE_CA_B64},
                   vpcConfig={**inputs.get("vpcConfig", {}),
                              "clusterSecurityGroupId": "sg-0example0cluster",
                              "vpcId": "vpc-0example"},
                   identities=[{"oidcs": [{"issuer": "https://oidc.eks.example.com/id/ABCDEF"}]}])
    elif typ == "aws:iam/role:Role":
        out["arn"] = f"arn:aws:iam::{AWS_ACCOUNT}:role/{resource_name}"
    elif typ == "aws:sqs/queue:Queue":
        out["url"] = f"https://sqs.{region}.amazonaws.com/{AWS_ACCOUNT}/{resource_name}"
    elif typ == "aws:lambda/function:Function":
        out["arn"] = f"arn:aws:lambda:{region}:{AWS_ACCOUNT}:function:{resource_name}"
        out["invokeArn"] = (f"arn:aws:apigateway:{region}:lambda:path/2015-03-31/functions/"
                            f"{out['arn']}/invocations")
    elif typ == "aws:apigateway/restApi:RestApi":
        out.update(rootResourceId="rootres01", executionArn=f"arn:aws:execute-api:{region}:"
                   f"{AWS_ACCOUNT}:api0123456")
    elif typ == "aws:apigateway/stage:Stage":
        out["invokeUrl"] = (f"https://api0123456.execute-api.{region}.amazonaws.com/"
                            f"{inputs.get('stageName', 'v1')}")
    elif typ == "aws:apigateway/apiKey:ApiKey":
        out["value"] = "offline-preview-api-key"
    elif typ == "aws:efs/fileSystem:FileSystem":
        out["dnsName"] = f"fs-0123456789.efs.{region}.amazonaws.com"
    elif typ in ("aws:s3/bucket:Bucket", "aws:s3/bucketV2:BucketV2"):
        out["bucket"] = inputs.get("bucket", generated)
        out["arn"] = f"arn:aws:s3:::{out['bucket']}"
    elif typ == "aws:kms/key:Key":
        out["keyId"] = "0example-0000-0000-0000-000000000000"
        out["arn"] = f"arn:aws:kms:{region}:{AWS_ACCOUNT}:key/{out['keyId']}"
    return out
