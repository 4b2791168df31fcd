"""The three Lambda functions, their layers, roles and log groups, and the queue that drives the indexer.

Each function is a thin handler folder (`functions/<name>/app.py`, handler `app.lambda_handler`)
over three shared layers built by `python -m layers.build`: core (the lookalike package), deps
(wheels for Lambda's platform) and model (/opt/model/embedder.onnx). Runtime and architecture
must be those the layers were built for; tests/test_infra.py holds them to layers/build.py.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_aws as aws

from . import policies
from .config import FunctionSettings

FUNCTION_NAMES = ("indexer", "search", "admin")
LAYER_NAMES = ("core", "deps", "model")
LAMBDA_RUNTIME = "python3.11"
LAMBDA_ARCHITECTURE = "x86_64"
HANDLER = "app.lambda_handler"
MODEL_PATH = "/opt/model/embedder.onnx"


@dataclass(frozen=True)
class LambdaFunction:
    function: aws.lambda_.Function
    role: aws.iam.Role
    policy: aws.iam.RolePolicy
    log_group: aws.cloudwatch.LogGroup


def function_role(name: str) -> aws.iam.Role:
    """A role only Lambda can assume; its permissions come as one inline policy (see permissions.py)."""
    return aws.iam.Role(f"{name}-role", assume_role_policy=policies.assume_role("lambda.amazonaws.com"))


def log_group(stack_name: str, part: str, retention_days: int) -> aws.cloudwatch.LogGroup:
    """Created here rather than by Lambda on first write, so that it has a retention and goes with the stack."""
    return aws.cloudwatch.LogGroup(
        f"{stack_name}-{part}-logs", name=f"/lookalike/{stack_name}/{part}", retention_in_days=retention_days
    )


def layers(name: str, layers_dir: Path) -> dict[str, aws.lambda_.LayerVersion]:
    missing = [layer for layer in LAYER_NAMES if not (layers_dir / f"{layer}.zip").is_file()]
    if missing:
        raise FileNotFoundError(
            f"{', '.join(f'{layer}.zip' for layer in missing)} missing from {layers_dir}: "
            f"build the layers first (`python -m layers.build --out {layers_dir}`)"
        )
    return {
        layer: aws.lambda_.LayerVersion(
            f"{name}-{layer}",
            layer_name=f"{name}-{layer}",
            code=pulumi.FileArchive(str(layers_dir / f"{layer}.zip")),
            compatible_runtimes=[LAMBDA_RUNTIME],
            compatible_architectures=[LAMBDA_ARCHITECTURE],
        )
        for layer in LAYER_NAMES
    }


def code_archive(folder: Path) -> pulumi.AssetArchive:
    """The handler folder without bytecode, so a local run does not change the deployed code's hash."""
    if not (folder / "app.py").is_file():
        raise FileNotFoundError(f"{folder}/app.py is missing: each function is a folder with app.py ({HANDLER})")
    return pulumi.AssetArchive(
        {
            path.relative_to(folder).as_posix(): pulumi.FileAsset(str(path))
            for path in sorted(folder.rglob("*"))
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
        }
    )


def lambda_function(
    name: str,
    code_folder: Path,
    settings: FunctionSettings,
    role: aws.iam.Role,
    statements: Sequence[policies.Statement],
    log: aws.cloudwatch.LogGroup,
    layer_versions: Mapping[str, aws.lambda_.LayerVersion],
    environment: Mapping[str, pulumi.Input[str]],
    tracing: bool,
) -> LambdaFunction:
    policy = aws.iam.RolePolicy(name, role=role.id, policy=policies.document(statements))
    function = aws.lambda_.Function(
        name,
        role=role.arn,
        runtime=LAMBDA_RUNTIME,
        architectures=[LAMBDA_ARCHITECTURE],
        handler=HANDLER,
        code=code_archive(code_folder),
        layers=[layer_versions[layer].arn for layer in LAYER_NAMES],
        memory_size=settings.memory_mb,
        timeout=settings.timeout_s,
        environment={"variables": dict(environment)},
        logging_config={"log_format": "Text", "log_group": log.name},
        tracing_config={"mode": "Active" if tracing else "PassThrough"},
        # Permissions first: the first invocation must be able to write its logs and reach its data.
        opts=pulumi.ResourceOptions(depends_on=[policy]),
    )
    return LambdaFunction(function, role, policy, log)


def queue_trigger(
    name: str, indexer: LambdaFunction, queue: aws.sqs.Queue, batch_size: int, max_concurrency: int
) -> aws.lambda_.EventSourceMapping:
    """SQS -> indexer with partial batch responses: the handler reports the records that failed
    (powertools' BatchProcessor), only those return to the queue and, after MAX_RECEIVES, to the DLQ."""
    return aws.lambda_.EventSourceMapping(
        name,
        event_source_arn=queue.arn,
        function_name=indexer.function.arn,
        batch_size=batch_size,
        function_response_types=["ReportBatchItemFailures"],
        scaling_config={"maximum_concurrency": max_concurrency},
        # Lambda checks at creation that the role can read the queue.
        opts=pulumi.ResourceOptions(depends_on=[indexer.policy]),
    )
