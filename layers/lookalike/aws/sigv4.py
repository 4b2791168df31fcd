"""OpenSearch on AWS: SigV4-signed clients and stores, with boto3's default credential chain (the
Lambda role's, in the cloud).

The store itself knows nothing of AWS (it takes any requests auth); this module is where an AWS
endpoint's service ("es" for a managed domain, "aoss" for a Serverless collection) and region are
read from its host name and turned into a signer.
"""

import re
from urllib.parse import urlsplit

import boto3
from opensearchpy import OpenSearch
from opensearchpy.helpers.signer import RequestsAWSV4SignerAuth

from lookalike.errors import InvalidParameterError
from lookalike.stores.opensearch import DEFAULT_INDEX, OpenSearchStore, build_client

SERVICES = ("es", "aoss")
AWS_HOST = re.compile(r"\.([a-z]{2}(?:-[a-z]+)+-\d+)\.(es|aoss)\.amazonaws\.com(?:\.cn)?$")


def service_for_host(host: str) -> str | None:
    """ "es" or "aoss" for an AWS endpoint host name, None for anything else."""
    match = AWS_HOST.search(host)
    return match.group(2) if match else None


def sigv4_auth(service: str, region: str | None = None) -> RequestsAWSV4SignerAuth:
    """Requests signed for `service` ("es" or "aoss") in `region`, by default the environment's."""
    if service not in SERVICES:
        raise InvalidParameterError(f"OpenSearch service must be one of {', '.join(SERVICES)}, got {service!r}")
    session = boto3.Session()
    region = region or session.region_name
    credentials = session.get_credentials()
    if not region:
        raise InvalidParameterError("SigV4 signing needs a region: pass one, or set AWS_DEFAULT_REGION")
    if credentials is None:
        raise InvalidParameterError("SigV4 signing needs AWS credentials, and boto3 found none")
    return RequestsAWSV4SignerAuth(credentials, region, service)


def _endpoint_auth(endpoint: str, service: str, region: str | None) -> RequestsAWSV4SignerAuth:
    """The signer for an endpoint: the region defaults to its AWS host name's, then boto3's."""
    match = AWS_HOST.search(urlsplit(endpoint).hostname or "")
    return sigv4_auth(service, region or (match.group(1) if match else None))


def signed_client(endpoint: str, service: str, region: str | None = None) -> OpenSearch:
    """An opensearch-py client whose requests are SigV4-signed for `service`."""
    return build_client(endpoint, auth=_endpoint_auth(endpoint, service, region))


def signed_store(
    endpoint: str, index: str = DEFAULT_INDEX, *, service: str | None = None, region: str | None = None, **options
) -> OpenSearchStore:
    """The store at an endpoint URL, signed when `service` is given or the host is an AWS one
    (`service` defaults to the host's); any other endpoint is used as it is (basic auth from the URL)."""
    service = service or service_for_host(urlsplit(endpoint).hostname or "")
    if service is None:
        return OpenSearchStore.from_endpoint(endpoint, index, **options)
    auth = _endpoint_auth(endpoint, service, region)
    return OpenSearchStore.from_endpoint(endpoint, index, auth=auth, serverless=service == "aoss", **options)
