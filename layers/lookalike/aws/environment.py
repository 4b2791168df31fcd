"""The services a Lambda function needs, built from its environment variables.

Each is built on first use and kept for the container's life: the model session, the OpenSearch
connection and the AWS clients cost a cold start once, not a request each. A function touches only
what it uses, so it needs only that part of the environment (the admin function never loads the
model), and a missing variable is named when the service that needs it is first built.

Variables (set by the Pulumi program): GALLERY_BUCKET, QUERY_BUCKET, OPENSEARCH_ENDPOINT,
OPENSEARCH_SERVICE (es | aoss), OPENSEARCH_INDEX, KNN_M, KNN_EF_CONSTRUCTION, KNN_EF_SEARCH,
LEDGER_TABLE, IDEMPOTENCY_TABLE, EVENTS_TABLE, INDEX_QUEUE_URL, INDEX_REGIONS (true: index each
image's suggested fragments too), LOOKALIKE_MODEL; AWS_REGION comes from Lambda.
"""

import functools
import os
from functools import cached_property

import boto3
from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer
from botocore.config import Config

from lookalike.aws.backfill import Backfill
from lookalike.aws.ledger import Ledger, OrderedIndexer
from lookalike.aws.s3_source import S3Source
from lookalike.aws.dynamodb_log import DynamoDBEventLog
from lookalike.aws.sigv4 import signed_store
from lookalike.aws.uploads import QueryUploads
from lookalike.embedding import Embedder
from lookalike.indexing import Indexer
from lookalike.knn import KnnMethod
from lookalike.proposals import Proposer
from lookalike.paths import default_model_path
from lookalike.search import SearchService
from lookalike.stores.opensearch import DEFAULT_INDEX, OpenSearchStore


class MissingSettingError(RuntimeError):
    """The function was deployed without a variable one of its services needs."""


class CloudEnvironment:
    def setting(self, name: str) -> str:
        value = os.environ.get(name)
        if not value:
            raise MissingSettingError(f"the environment variable {name} is not set")
        return value

    @cached_property
    def s3(self):
        """SigV4 and virtual-hosted style, which make botocore sign for the regional endpoint: a
        presigned URL for the global one is redirected while a new bucket outside us-east-1 settles."""
        return boto3.client("s3", config=Config(signature_version="s3v4", s3={"addressing_style": "virtual"}))

    @cached_property
    def gallery(self) -> S3Source:
        return S3Source(self.s3, self.setting("GALLERY_BUCKET"))

    @cached_property
    def uploads(self) -> QueryUploads:
        return QueryUploads(self.s3, self.setting("QUERY_BUCKET"))

    @cached_property
    def store(self) -> OpenSearchStore:
        method = KnnMethod(
            name="hnsw",
            m=int(os.environ.get("KNN_M") or KnnMethod.m),
            ef_construction=int(os.environ.get("KNN_EF_CONSTRUCTION") or KnnMethod.ef_construction),
            ef_search=int(os.environ.get("KNN_EF_SEARCH") or KnnMethod.ef_search),
        )
        return signed_store(
            self.setting("OPENSEARCH_ENDPOINT"),
            os.environ.get("OPENSEARCH_INDEX") or DEFAULT_INDEX,
            service=os.environ.get("OPENSEARCH_SERVICE") or None,
            method=method,
        )

    @cached_property
    def embedder(self) -> Embedder:
        return Embedder(default_model_path())

    @cached_property
    def search_service(self) -> SearchService:
        return SearchService(self.embedder, self.store)

    @cached_property
    def proposer(self) -> Proposer | None:
        """None for a model exported without activation maps: it embeds, it proposes nothing."""
        return Proposer(self.embedder) if self.embedder.has_activation_maps else None

    @cached_property
    def events(self) -> DynamoDBEventLog:
        return DynamoDBEventLog(boto3.resource("dynamodb").Table(self.setting("EVENTS_TABLE")))

    @cached_property
    def ordered_indexer(self) -> OrderedIndexer:
        regions = os.environ.get("INDEX_REGIONS", "false").lower() == "true"
        indexer = Indexer(self.gallery, self.embedder, self.store, regions=regions)
        ledger = Ledger(boto3.resource("dynamodb").Table(self.setting("LEDGER_TABLE")))
        return OrderedIndexer(indexer, ledger, self.gallery.bucket)

    @cached_property
    def idempotency_store(self) -> DynamoDBPersistenceLayer:
        return DynamoDBPersistenceLayer(table_name=self.setting("IDEMPOTENCY_TABLE"))

    @cached_property
    def backfill(self) -> Backfill:
        return Backfill(self.s3, boto3.client("sqs"), self.setting("GALLERY_BUCKET"), self.setting("INDEX_QUEUE_URL"))



@functools.cache
def current() -> CloudEnvironment:
    """The container's environment, built once."""
    return CloudEnvironment()
