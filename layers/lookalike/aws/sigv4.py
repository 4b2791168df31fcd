"""SigV4 signing of OpenSearch requests with boto3's default credential chain (the Lambda role's,
in the cloud).

The OpenSearch client imports this module only when it signs: a store at any other endpoint (a
local cluster, basic auth) works without boto3.
"""

import boto3
from opensearchpy.helpers.signer import RequestsAWSV4SignerAuth

from lookalike.errors import InvalidParameterError


def sigv4_auth(service: str, region: str | None = None) -> RequestsAWSV4SignerAuth:
    """Requests signed for `service` ("es" or "aoss") in `region`, by default the environment's."""
    session = boto3.Session()
    region = region or session.region_name
    credentials = session.get_credentials()
    if not region:
        raise InvalidParameterError("SigV4 signing needs a region: pass one, or set AWS_DEFAULT_REGION")
    if credentials is None:
        raise InvalidParameterError("SigV4 signing needs AWS credentials, and boto3 found none")
    return RequestsAWSV4SignerAuth(credentials, region, service)
