"""The whole deployment from one StackConfig: which piece feeds which, in the order AWS needs.

Roles exist before OpenSearch (its data access policy names them); their permissions come after
(they name OpenSearch); functions come last but for the API and the alarms that point at them.
"""

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from . import permissions
from .alarms import Alarms, alarms
from .config import StackConfig
from .functions import (
    FUNCTION_NAMES,
    MODEL_PATH,
    LambdaFunction,
    function_role,
    lambda_function,
    layers,
    log_group,
    queue_trigger,
)
from .http_api import HttpApi, http_api
from .index_feed import IndexFeed, index_feed
from .storage import PrivateBucket, QueryBucket, private_bucket, query_bucket
from .tables import Tables, tables
from .vector_search import VectorSearch, vector_search


@dataclass(frozen=True)
class LookalikeStack:
    name: str
    gallery: PrivateBucket
    query: QueryBucket
    feed: IndexFeed
    tables: Tables
    vectors: VectorSearch
    layers: dict[str, aws.lambda_.LayerVersion]
    functions: dict[str, LambdaFunction]
    index_trigger: aws.lambda_.EventSourceMapping
    api: HttpApi
    alarms: Alarms

    @property
    def api_url(self) -> pulumi.Output[str]:
        return self.api.api.api_endpoint


def build_stack(config: StackConfig) -> LookalikeStack:
    name = config.name
    shared_layers = layers(name, config.layers_dir)  # first: a missing archive stops the preview at once
    gallery = private_bucket(f"{name}-gallery", config.force_destroy)
    query = query_bucket(f"{name}-queries", config.force_destroy, config.cors_origins)
    feed = index_feed(f"{name}-index", gallery.bucket, config.indexer.timeout_s)
    data_tables = tables(name)

    roles = {function: function_role(f"{name}-{function}") for function in FUNCTION_NAMES}
    vectors = vector_search(
        name, config.opensearch, {"write": [roles["indexer"]], "read": [roles["search"]], "admin": [roles["admin"]]}
    )
    logs = {function: log_group(name, function, config.log_retention_days) for function in FUNCTION_NAMES}
    statements = {
        "indexer": permissions.indexer_statements(gallery, feed, data_tables, vectors),
        "search": permissions.search_statements(gallery, query, data_tables, vectors),
        "admin": permissions.admin_statements(gallery, feed, vectors),
    }
    settings = {"indexer": config.indexer, "search": config.search, "admin": config.admin}
    knn = config.opensearch
    environment = {
        "GALLERY_BUCKET": gallery.bucket.bucket,
        "QUERY_BUCKET": query.bucket.bucket,
        "OPENSEARCH_ENDPOINT": vectors.endpoint,
        "OPENSEARCH_SERVICE": vectors.service,
        "OPENSEARCH_INDEX": knn.index,
        "KNN_M": str(knn.hnsw_m),
        "KNN_EF_CONSTRUCTION": str(knn.hnsw_ef_construction),
        "KNN_EF_SEARCH": str(knn.hnsw_ef_search),
        "LEDGER_TABLE": data_tables.ledger.name,
        "IDEMPOTENCY_TABLE": data_tables.idempotency.name,
        "EVENTS_TABLE": data_tables.events.name,
        "INDEX_QUEUE_URL": feed.queue.url,
        "INDEX_REGIONS": "true" if config.regions else "false",
        "LOOKALIKE_MODEL": MODEL_PATH,
        "POWERTOOLS_LOG_LEVEL": config.log_level,
        "POWERTOOLS_TRACE_DISABLED": "false" if config.tracing else "true",
    }
    functions = {
        function: lambda_function(
            f"{name}-{function}",
            config.functions_dir / function,
            settings[function],
            roles[function],
            [*permissions.runtime_statements(logs[function], config.tracing), *statements[function]],
            logs[function],
            shared_layers,
            environment | {"POWERTOOLS_SERVICE_NAME": f"lookalike-{function}"},
            config.tracing,
        )
        for function in FUNCTION_NAMES
    }
    index_trigger = queue_trigger(
        f"{name}-index", functions["indexer"], feed.queue, config.batch_size, config.indexer_max_concurrency
    )
    api = http_api(
        f"{name}-api",
        functions["search"],
        functions["admin"],
        config.cors_origins,
        config.api_rate_limit,
        config.api_burst_limit,
        log_group(name, "api", config.log_retention_days),
    )
    return LookalikeStack(
        name=name,
        gallery=gallery,
        query=query,
        feed=feed,
        tables=data_tables,
        vectors=vectors,
        layers=shared_layers,
        functions=functions,
        index_trigger=index_trigger,
        api=api,
        alarms=alarms(name, feed.dead_letter_queue, functions, config.alarm_email),
    )
