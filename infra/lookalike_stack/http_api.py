"""The HTTPS API: an API Gateway HTTP API in front of the search and admin functions.

Everything public (search, uploads, proposals, events, images, the page) reaches the search
function through the `$default` route, throttled at the stage and validated by the routes
themselves. The admin routes go to the admin function and require AWS_IAM authorization: the
caller signs with SigV4 and needs `execute-api:Invoke` on those routes (the exported
admin-invoke policy grants exactly that). HTTP APIs have no API keys; IAM was chosen over a JWT
authorizer because the admins are operators and scripts that already hold AWS credentials, so no
identity provider has to be deployed, and granting or revoking access is an IAM change that
CloudTrail records (docs/DEPLOY.md says more).
"""

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from . import policies
from .functions import LambdaFunction

ADMIN_ROUTE_PATHS = ("/blocklist", "/blocklist/{id}", "/admin/{proxy+}")
STAGE = "$default"
CORS_METHODS = ("GET", "POST", "PUT", "DELETE", "OPTIONS")
# What a browser may send: JSON and multipart bodies, and SigV4 headers for the admin routes.
CORS_HEADERS = ("authorization", "content-type", "x-amz-content-sha256", "x-amz-date", "x-amz-security-token")
ACCESS_LOG_FORMAT = json.dumps(
    {
        "requestId": "$context.requestId",
        "ip": "$context.identity.sourceIp",
        "time": "$context.requestTime",
        "routeKey": "$context.routeKey",
        "status": "$context.status",
        "responseLength": "$context.responseLength",
        "latencyMs": "$context.responseLatency",
        "integrationError": "$context.integrationErrorMessage",
        "iamUser": "$context.identity.userArn",
    }
)


@dataclass(frozen=True)
class HttpApi:
    api: aws.apigatewayv2.Api
    stage: aws.apigatewayv2.Stage
    routes: dict[str, aws.apigatewayv2.Route]  # by route key
    invoke_permissions: dict[str, aws.lambda_.Permission]  # by function
    admin_invoke_policy: aws.iam.Policy
    access_log_group: aws.cloudwatch.LogGroup


def http_api(
    name: str,
    search: LambdaFunction,
    admin: LambdaFunction,
    cors_origins: Sequence[str],
    rate_limit: float,
    burst_limit: int,
    access_log_group: aws.cloudwatch.LogGroup,
) -> HttpApi:
    api = aws.apigatewayv2.Api(
        name,
        protocol_type="HTTP",
        cors_configuration={
            "allow_origins": list(cors_origins),
            "allow_methods": list(CORS_METHODS),
            "allow_headers": list(CORS_HEADERS),
            "max_age": 3600,
        },
    )
    targets = {"search": search, "admin": admin}
    integrations = {
        function: aws.apigatewayv2.Integration(
            f"{name}-{function}",
            api_id=api.id,
            integration_type="AWS_PROXY",
            integration_method="POST",
            integration_uri=target.function.invoke_arn,
            payload_format_version="2.0",
        )
        for function, target in targets.items()
    }
    route_targets = {"$default": ("search", "NONE")} | {f"ANY {path}": ("admin", "AWS_IAM") for path in ADMIN_ROUTE_PATHS}
    routes = {
        route_key: aws.apigatewayv2.Route(
            f"{name}-{_slug(route_key)}",
            api_id=api.id,
            route_key=route_key,
            target=pulumi.Output.concat("integrations/", integrations[function].id),
            authorization_type=authorization,
        )
        for route_key, (function, authorization) in route_targets.items()
    }
    stage = aws.apigatewayv2.Stage(
        name,
        api_id=api.id,
        name=STAGE,
        auto_deploy=True,
        default_route_settings={"throttling_rate_limit": rate_limit, "throttling_burst_limit": burst_limit},
        access_log_settings={"destination_arn": access_log_group.arn, "format": ACCESS_LOG_FORMAT},
        opts=pulumi.ResourceOptions(depends_on=list(routes.values())),
    )
    invoke_permissions = {
        function: aws.lambda_.Permission(
            f"{name}-invoke-{function}",
            action="lambda:InvokeFunction",
            function=target.function.name,
            principal="apigateway.amazonaws.com",
            source_arn=pulumi.Output.concat(api.execution_arn, "/*/*"),
        )
        for function, target in targets.items()
    }
    admin_invoke_policy = aws.iam.Policy(
        f"{name}-admin-invoke",
        description="Call the Lookalike admin routes (attach to the operators' users or roles)",
        policy=policies.document(
            [
                policies.allow(
                    "InvokeAdminRoutes",
                    ["execute-api:Invoke"],
                    [pulumi.Output.concat(api.execution_arn, f"/{STAGE}/", arn_path) for arn_path in _admin_arn_paths()],
                )
            ]
        ),
    )
    return HttpApi(api, stage, routes, invoke_permissions, admin_invoke_policy, access_log_group)


def _admin_arn_paths() -> list[str]:
    """execute-api resource paths (`<method>/<path>`) for the admin routes; path parameters become `*`."""
    paths = []
    for path in ADMIN_ROUTE_PATHS:
        parts = ["*" if part.startswith("{") else part for part in path.strip("/").split("/")]
        paths.append("*/" + "/".join(parts))
    return paths


def _slug(route_key: str) -> str:
    """A resource name from a route key: "$default" -> "default", "ANY /blocklist/{id}" -> "any-blocklist-id"."""
    return re.sub(r"[^a-z0-9]+", "-", route_key.lower()).strip("-")
