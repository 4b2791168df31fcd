"""The opensearch-py client for an endpoint URL: plain, basic auth from the URL, or SigV4-signed.

`service` is "es" (a managed domain) or "aoss" (a Serverless collection); None infers it from an
AWS endpoint's host name and means "no SigV4" for any other URL (a local cluster, user:password in
the URL). Signing needs boto3, which `lookalike.aws.sigv4` imports: it is imported only when a
client signs, so the store works without boto3 against any other endpoint.
"""

import re
from urllib.parse import unquote, urlsplit

from opensearchpy import OpenSearch, RequestsHttpConnection

from lookalike.errors import InvalidParameterError

SERVICES = ("es", "aoss")
AWS_HOST = re.compile(r"\.([a-z]{2}(?:-[a-z]+)+-\d+)\.(es|aoss)\.amazonaws\.com(?:\.cn)?$")


def service_for_host(host: str) -> str | None:
    """ "es" or "aoss" for an AWS endpoint host name, None for anything else."""
    match = AWS_HOST.search(host)
    return match.group(2) if match else None


def build_client(
    endpoint: str, service: str | None = None, region: str | None = None, timeout: float = 10.0
) -> OpenSearch:
    """An opensearch-py client for an https (or local http) endpoint URL.

    With `service`, requests are SigV4-signed for it (the region defaults to the one in an AWS
    host name, then boto3's); without, user:password in the URL becomes basic auth.
    """
    url = urlsplit(endpoint)
    if url.scheme not in ("http", "https") or not url.hostname:
        raise InvalidParameterError(f"an OpenSearch endpoint is an http(s) URL, got {endpoint!r}")
    secure = url.scheme == "https"
    host = {"host": url.hostname, "port": url.port or (443 if secure else 80)}
    if url.path.strip("/"):
        host["url_prefix"] = url.path.rstrip("/")
    if service is not None:
        if service not in SERVICES:
            raise InvalidParameterError(f"OpenSearch service must be one of {', '.join(SERVICES)}, got {service!r}")
        from lookalike.aws.sigv4 import sigv4_auth  # here: only a signing client needs boto3

        match = AWS_HOST.search(url.hostname)
        auth = sigv4_auth(service, region or (match.group(1) if match else None))
    elif url.username:
        auth = (unquote(url.username), unquote(url.password or ""))
    else:
        auth = None
    return OpenSearch(
        hosts=[host],
        http_auth=auth,
        use_ssl=secure,
        verify_certs=secure,
        connection_class=RequestsHttpConnection,
        timeout=timeout,
    )
