"""The search function: every public route of the API (API Gateway's `$default` route).

The same powertools routes as the local server (search, suggested fragments, result events, the
web page), with the gallery in S3 (GET /images/{id} answers with a redirect to a short-lived
presigned URL), the vectors in OpenSearch, the events in DynamoDB, and POST /uploads for queries
larger than API Gateway and Lambda take in a request. The block list is not here: the
admin function serves it behind IAM. Everything is built at import, during the cold start.
"""

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from lookalike.aws import environment
from lookalike.http.app import create_app

logger = Logger()
tracer = Tracer()
services = environment.current()
app = create_app(
    services.search_service,
    services.gallery,
    admin=False,
    uploads=services.uploads,
    proposer=services.proposer,
    events=services.events,
)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
# A response may be a page asset, larger than an X-Ray document may be.
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
