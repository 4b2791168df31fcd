"""The cloud vector store: an OpenSearch k-NN index, reached through opensearch-py.

`store` is the VectorStore, `documents` maps images onto documents and request bodies, and
`client` builds the opensearch-py client (SigV4-signed through `lookalike.aws.sigv4` for AWS).
"""

from lookalike.stores.opensearch.client import build_client
from lookalike.stores.opensearch.store import DEFAULT_INDEX, OpenSearchStore, StoreWriteError

__all__ = ["DEFAULT_INDEX", "OpenSearchStore", "StoreWriteError", "build_client"]
