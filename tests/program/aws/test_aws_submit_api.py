"""The EKS variant's job API as planned: every route needs a key and reaches the submit Lambda,
the Lambda is built from functions/submit with the settings it reads, and the client policy
invokes exactly the API's routes."""

from __future__ import annotations

from tests.program.aws.aws_fixtures import STACK, aws_config, aws_config_of, aws_plan, aws_update  # noqa: F401


def test_every_route_requires_a_key_and_reaches_the_lambda(aws_update):
    import sys

    from tools.preview import ROOT
    sys.path.insert(0, str(ROOT / "functions" / "submit"))
    try:
        from sdfleet_submit.app import ROUTES as APP_ROUTES
    finally:
        sys.path.remove(str(ROOT / "functions" / "submit"))
    resources = {r.id: r.inputs for r in aws_update.of_type("aws:apigateway/resource:Resource")}

    def path_of(resource_id):
        r = resources.get(resource_id)
        return "" if r is None else path_of(r["parentId"]) + "/" + r["pathPart"]

    methods = aws_update.of_type("aws:apigateway/method:Method")
    routes = {(m.inputs["httpMethod"], path_of(m.inputs["resourceId"])) for m in methods}
    assert routes == set(APP_ROUTES)  # the API serves exactly the routes the function handles
    assert all(m.inputs["apiKeyRequired"] is True for m in methods)
    # The identity is the SigV4 signer (IAM), never the key: rotating a key orphans nothing.
    assert {m.inputs["authorization"] for m in methods} == {"AWS_IAM"}
    integrations = aws_update.of_type("aws:apigateway/integration:Integration")
    assert len(integrations) == len(methods)
    for integration in integrations:
        assert integration.inputs["type"] == "AWS_PROXY"
        assert integration.inputs["uri"].endswith(":function:sdbatch-submit/invocations")
    plan_ = aws_update.one("aws:apigateway/usagePlan:UsagePlan").inputs
    assert plan_["throttleSettings"] == {"rateLimit": 5, "burstLimit": 10}
    assert plan_["quotaSettings"] == {"limit": 5000, "period": "DAY"}
    assert plan_["apiStages"][0]["stage"] == "v1"
    key = aws_update.one("aws:apigateway/usagePlanKey:UsagePlanKey").inputs
    assert key["keyType"] == "API_KEY"
    permissions = aws_update.of_type("aws:lambda/permission:Permission")
    assert {p.inputs["sourceArn"].split("/", 1)[1] for p in permissions} == {
        "*/POST/jobs", "*/GET/jobs", "*/GET/jobs/*", "*/POST/uploads"}
    assert all(p.inputs["principal"] == "apigateway.amazonaws.com" for p in permissions)


def test_submit_lambda_is_built_from_functions_submit_with_its_env(aws_update):
    fn = aws_update.one("aws:lambda/function:Function").inputs
    assert fn["handler"] == "handler.handler" and fn["runtime"].startswith("python3")
    assert fn["code"] == {"asset": "(inline)"}  # an archive; its contents: test below
    env = fn["environment"]["variables"]
    assert env["RUNTIMES"] == "sdwebui,comfyui"
    assert env["JOBS_TOPIC_ARN"] == "arn:aws:sns:us-east-1:123456789012:sdbatch-jobs"
    assert env["MAX_STEPS"] == "80" and env["MAX_BATCH_SIZE"] == "4"
    assert env["ALLOWED_IMAGE_HOSTS"] == "images.example.com"


def test_submit_env_satisfies_the_functions_own_settings(aws_update):
    import sys

    from tools.preview import ROOT
    sys.path.insert(0, str(ROOT / "functions" / "submit"))
    try:
        from sdfleet_submit.settings import load_settings
    finally:
        sys.path.remove(str(ROOT / "functions" / "submit"))
    env = aws_update.one("aws:lambda/function:Function").inputs["environment"]["variables"]
    settings = load_settings(env)
    assert settings.runtimes == ("sdwebui", "comfyui")


def test_the_lambdas_variables_are_named_by_its_env_module(aws_update):
    """The stack sets, and the Lambda reads, exactly the names of sdfleet_submit/env.py."""
    import sys

    from components.aws.api import SUBMIT_ENV
    from tools.preview import ROOT
    sys.path.insert(0, str(ROOT / "functions" / "submit"))
    try:
        from sdfleet_submit import env
        from sdfleet_submit.settings import ENVIRONMENT
    finally:
        sys.path.remove(str(ROOT / "functions" / "submit"))
    names = {v for k, v in vars(env).items() if k.isupper()}
    assert SUBMIT_ENV.__file__ == env.__file__
    assert set(ENVIRONMENT) == names
    set_by_stack = set(aws_update.one("aws:lambda/function:Function").inputs["environment"]["variables"])
    assert set_by_stack <= names and {"JOBS_TOPIC_ARN", "RUNTIMES", "RESULTS_BUCKET"} <= set_by_stack


def test_submit_archive_holds_the_handler_and_package(tmp_path):
    from components.aws.api import SUBMIT_DIR, submit_archive

    archive = submit_archive()
    assert set(archive.assets) == {"handler.py", "sdfleet_submit"}
    assert archive.assets["handler.py"].path == str(SUBMIT_DIR / "handler.py")
    # what the build vendored is taken at the archive's root
    (tmp_path / "handler.py").write_text("")
    (tmp_path / "sdfleet_submit").mkdir()
    (tmp_path / "vendor" / "pydantic").mkdir(parents=True)
    assert set(submit_archive(tmp_path).assets) == {"handler.py", "sdfleet_submit", "pydantic"}


def test_the_client_policy_invokes_exactly_the_apis_routes(aws_update):
    import json as _json

    from components.aws.api import ROUTES
    policy = aws_update.one("aws:iam/policy:Policy", "client").inputs["policy"]
    (statement,) = _json.loads(policy)["Statement"]
    assert statement["Action"] == ["execute-api:Invoke"]
    resources = sorted(statement["Resource"])
    assert len(resources) == len(ROUTES)
    assert all(":execute-api:us-east-1:123456789012:" in r and "/v1/" in r for r in resources)
    assert any(r.endswith("/v1/GET/jobs/*") for r in resources)
    assert aws_update.outputs["apiClientPolicyArn"].startswith("arn:aws:iam:")
