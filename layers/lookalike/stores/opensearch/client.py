"""The opensearch-py client for an endpoint URL: plain, basic auth from the URL, or any other
requests auth handed in.

AWS's SigV4 signing is such an auth, built under `lookalike.aws` (`sigv4.signed_client`): the store
knows nothing of AWS and works without boto3 against any other endpoint.
"""

from urllib.parse import unquote, urlsplit

from opensearchpy import OpenSearch, RequestsHttpConnection

from lookalike.errors import InvalidParameterError


def build_client(endpoint: str, auth=None, timeout: float = 10.0) -> OpenSearch:
    """An opensearch-py client for an https (or local http) endpoint URL.

    `auth` signs every request (a requests auth object, e.g. SigV4); without it, user:password in
    the URL becomes basic auth.
    """
    url = urlsplit(endpoint)
    if url.scheme not in ("http", "https") or not url.hostname:
        raise InvalidParameterError(f"an OpenSearch endpoint is an http(s) URL, got {endpoint!r}")
    secure = url.scheme == "https"
    host = {"host": url.hostname, "port": url.port or (443 if secure else 80)}
    if url.path.strip("/"):
        host["url_prefix"] = url.path.rstrip("/")
    if auth is None and url.username:
        auth = (unquote(url.username), unquote(url.password or ""))
    return OpenSearch(
        hosts=[host],
        http_auth=auth,
        use_ssl=secure,
        verify_certs=secure,
        connection_class=RequestsHttpConnection,
        timeout=timeout,
    )
