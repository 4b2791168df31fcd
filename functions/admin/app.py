"""The admin function: the block list (`/blocklist`, `/blocklist/{id}`) and the backfill
(`/admin/backfill`), behind AWS_IAM in API Gateway. It opens the vector store and lists the
gallery; it never loads the model."""

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from lookalike.aws import environment
from lookalike.http.app import create_admin_app

logger = Logger()
services = environment.current()
app = create_admin_app(services.store, backfill=services.backfill)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
