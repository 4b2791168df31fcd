"""The Pulumi program's security and wiring properties, checked under Pulumi's mocks (no CLI, no AWS).

Mocks are installed before the infrastructure package is imported (pulumi/examples testing-unit-py);
resources echo their inputs plus what AWS would compute (ARNs, URLs, endpoints). Both OpenSearch
modes are built; each test checks one property and says what is wrong when it fails.
"""

import ast
import fnmatch
import json
import runpy
import sys
import warnings
from pathlib import Path

import pulumi
import pytest

REPO = Path(__file__).resolve().parents[1]
ACCOUNT = "123456789012"
REGION = "us-east-1"


class LookalikeMocks(pulumi.runtime.Mocks):
    """Echo inputs, add computed attributes, and remember every registration for inventory checks."""

    def __init__(self) -> None:
        self.registrations: list[pulumi.runtime.MockResourceArgs] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        self.registrations.append(args)
        name = args.inputs.get("name") or args.name
        state = dict(args.inputs)
        computed = {
            "aws:s3/bucket:Bucket": lambda: {"bucket": f"{args.inputs['bucketPrefix']}mock", "arn": f"arn:aws:s3:::{args.inputs['bucketPrefix']}mock"},
            "aws:sqs/queue:Queue": lambda: {
                "name": name,
                "arn": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}",
                "url": f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{name}",
            },
            "aws:iam/role:Role": lambda: {"name": name, "arn": f"arn:aws:iam::{ACCOUNT}:role/{name}"},
            "aws:iam/policy:Policy": lambda: {"arn": f"arn:aws:iam::{ACCOUNT}:policy/{name}"},
            "aws:dynamodb/table:Table": lambda: {"name": name, "arn": f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{name}"},
            "aws:cloudwatch/logGroup:LogGroup": lambda: {"arn": f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{name}"},
            "aws:lambda/function:Function": lambda: {
                "name": name,
                "arn": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}",
                "invokeArn": f"arn:aws:apigateway:{REGION}:lambda:path/2015-03-31/functions/arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}/invocations",
            },
            "aws:lambda/layerVersion:LayerVersion": lambda: {"arn": f"arn:aws:lambda:{REGION}:{ACCOUNT}:layer:{name}:1"},
            "aws:apigatewayv2/api:Api": lambda: {
                "apiEndpoint": "https://a1b2c3.execute-api.us-east-1.amazonaws.com",
                "executionArn": f"arn:aws:execute-api:{REGION}:{ACCOUNT}:a1b2c3",
            },
            "aws:opensearch/serverlessCollection:ServerlessCollection": lambda: {
                "arn": f"arn:aws:aoss:{REGION}:{ACCOUNT}:collection/c0ll3ct10n",
                "collectionEndpoint": f"https://c0ll3ct10n.{REGION}.aoss.amazonaws.com",
            },
            "aws:opensearch/domain:Domain": lambda: {
                "arn": f"arn:aws:es:{REGION}:{ACCOUNT}:domain/{name}",
                "endpoint": f"search-{name}-x1y2.{REGION}.es.amazonaws.com",
            },
            "aws:sns/topic:Topic": lambda: {"arn": f"arn:aws:sns:{REGION}:{ACCOUNT}:{name}"},
        }.get(args.typ, dict)()
        state.update(computed)
        return [state.get("bucket", f"{args.name}-id"), state]

    def call(self, args: pulumi.runtime.MockCallArgs):
        if args.token == "aws:index/getCallerIdentity:getCallerIdentity":
            return {"accountId": ACCOUNT, "arn": f"arn:aws:iam::{ACCOUNT}:user/deployer", "userId": "AIDEXAMPLE"}
        raise NotImplementedError(f"the stack made an unexpected call: {args.token}")


MOCKS = LookalikeMocks()
pulumi.runtime.set_mocks(MOCKS, preview=False)

# Pulumi runs infra/__main__.py with infra/ on sys.path; the tests import the package the same way.
sys.path.insert(0, str(REPO / "infra"))
with warnings.catch_warnings():
    # pulumi_aws's modules warn, as they load, about each deprecated resource class they define.
    warnings.simplefilter("ignore", DeprecationWarning)
    from lookalike_stack import StackConfig, build_stack, load
    from lookalike_stack.config import FunctionSettings, OpenSearchSettings
    from lookalike_stack.http_api import ADMIN_ROUTE_PATHS

from layers import build as layer_build  # noqa: E402

MASTER_USER = f"arn:aws:iam::{ACCOUNT}:role/search-admins"
FUNCTIONS = ("indexer", "search", "admin")


def _config(tmp: Path, name: str, opensearch: OpenSearchSettings) -> StackConfig:
    """A non-default configuration, so tests can tell configured values from defaults."""
    layers_dir, functions_dir = tmp / "layers", tmp / "functions"
    layers_dir.mkdir()
    for layer in ("core", "deps", "model"):
        (layers_dir / f"{layer}.zip").write_bytes(b"")
    for function in FUNCTIONS:
        (functions_dir / function).mkdir(parents=True)
        (functions_dir / function / "app.py").write_text("def lambda_handler(event, context):\n    return None\n")
    return StackConfig(
        name=name,
        indexer=FunctionSettings(memory_mb=3008, timeout_s=90),
        search=FunctionSettings(memory_mb=1769, timeout_s=25),
        admin=FunctionSettings(memory_mb=512, timeout_s=20),
        batch_size=7,
        indexer_max_concurrency=3,
        regions=name == "lkdomain",  # one fixture each way
        opensearch=opensearch,
        api_rate_limit=12.5,
        api_burst_limit=25,
        cors_origins=("https://lookalike.example",),
        log_retention_days=14,
        alarm_email="ops@example.com",
        layers_dir=layers_dir,
        functions_dir=functions_dir,
    )


@pytest.fixture(scope="module")
def serverless(tmp_path_factory):
    settings = OpenSearchSettings(mode="serverless", hnsw_m=24, hnsw_ef_construction=256, hnsw_ef_search=64)
    return build_stack(_config(tmp_path_factory.mktemp("serverless"), "lkserverless", settings))


@pytest.fixture(scope="module")
def domain(tmp_path_factory):
    settings = OpenSearchSettings(
        mode="domain", instance_type="r6g.large.search", instance_count=2, volume_gb=40, master_user_arn=MASTER_USER,
        index="gallery-ft1",  # a non-default name, as a model switch sets (docs/DEPLOY.md)
    )
    return build_stack(_config(tmp_path_factory.mktemp("domain"), "lkdomain", settings))


@pytest.fixture(params=["serverless", "domain"])
def stack(request):
    return request.getfixturevalue(request.param)


# --- helpers --------------------------------------------------------------------------------


def _statements(policy_json: str) -> list[dict]:
    statements = json.loads(policy_json)["Statement"]
    return [statements] if isinstance(statements, dict) else statements


def _listed(value) -> list:
    return value if isinstance(value, list) else [value]


def can(policy_json: str, action: str, resource: str) -> bool:
    """Whether an Allow statement grants `action` on `resource`, matching wildcards as IAM does."""
    return any(
        statement["Effect"] == "Allow"
        and any(fnmatch.fnmatchcase(action, pattern) for pattern in _listed(statement["Action"]))
        and any(fnmatch.fnmatchcase(resource, pattern) for pattern in _listed(statement["Resource"]))
        for statement in _statements(policy_json)
    )


def _policies(stack):
    return [stack.functions[name].policy.policy for name in FUNCTIONS]


def _registered(typ: str, prefix: str) -> list[pulumi.runtime.MockResourceArgs]:
    return [args for args in MOCKS.registrations if args.typ == typ and args.name.startswith(prefix)]


def _all_urns(stack):
    """Every resource of the stack, so that an inventory check runs after all of them registered."""
    resources = []

    def walk(value):
        if isinstance(value, pulumi.Resource):
            resources.append(value)
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif hasattr(value, "__dataclass_fields__"):
            for field_name in value.__dataclass_fields__:
                walk(getattr(value, field_name))

    walk(stack)
    return pulumi.Output.all(*[resource.urn for resource in resources])


# --- buckets --------------------------------------------------------------------------------


@pulumi.runtime.test
def test_buckets_block_all_public_access(stack):
    blocks = [stack.gallery.public_access_block, stack.query.public_access_block]

    def check(values):
        for bucket, *flags in zip(*[iter(values)] * 5):
            assert all(flag is True for flag in flags), f"bucket {bucket} allows public access: {flags}"

    return pulumi.Output.all(
        *[
            value
            for block in blocks
            for value in (block.bucket, block.block_public_acls, block.block_public_policy, block.ignore_public_acls, block.restrict_public_buckets)
        ]
    ).apply(check)


@pulumi.runtime.test
def test_buckets_are_encrypted_by_default(stack):
    encryptions = [stack.gallery.encryption, stack.query.encryption]

    def check(values):
        for bucket, rules in zip(values[::2], values[1::2]):
            algorithms = [rule["apply_server_side_encryption_by_default"]["sse_algorithm"] for rule in rules]
            assert algorithms and all(a in ("AES256", "aws:kms") for a in algorithms), f"bucket {bucket} is not encrypted by default: {rules}"

    return pulumi.Output.all(*[v for e in encryptions for v in (e.bucket, e.rules)]).apply(check)


@pulumi.runtime.test
def test_buckets_refuse_plain_http(stack):
    def check(values):
        for arn, policy_json in zip(values[::2], values[1::2]):
            denies = [
                s for s in _statements(policy_json)
                if s["Effect"] == "Deny" and s.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") == "false"
            ]  # fmt: skip
            covered = {r for s in denies if s["Action"] == "s3:*" and s["Principal"] == "*" for r in s["Resource"]}
            assert {arn, f"{arn}/*"} <= covered, f"bucket {arn} accepts requests without TLS: {policy_json}"

    return pulumi.Output.all(*[v for b in (stack.gallery, stack.query) for v in (b.arn, b.policy.policy)]).apply(check)


@pulumi.runtime.test
def test_every_bucket_is_a_private_bucket(stack):
    prefix = stack.name

    def check(_):
        buckets = {args.name for args in _registered("aws:s3/bucket:Bucket", prefix)}
        for typ in (
            "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
            "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
            "aws:s3/bucketPolicy:BucketPolicy",
        ):
            protected = {args.name for args in _registered(typ, prefix)}
            assert buckets <= protected, f"buckets {sorted(buckets - protected)} have no {typ.rsplit(':', 1)[1]}"
        assert buckets == {f"{prefix}-gallery", f"{prefix}-queries"}, f"unexpected buckets: {sorted(buckets)}"

    return _all_urns(stack).apply(check)


# --- gallery -> queue -> indexer ------------------------------------------------------------


@pulumi.runtime.test
def test_index_queue_dead_letters_after_five_receives(stack):
    def check(values):
        redrive_json, dlq_arn = values
        redrive = json.loads(redrive_json)
        assert redrive["deadLetterTargetArn"] == dlq_arn, f"index queue redrives to {redrive['deadLetterTargetArn']}, not the DLQ"
        assert redrive["maxReceiveCount"] == 5, f"maxReceiveCount is {redrive['maxReceiveCount']}, not 5"

    return pulumi.Output.all(stack.feed.queue.redrive_policy, stack.feed.dead_letter_queue.arn).apply(check)


@pulumi.runtime.test
def test_gallery_notifies_index_queue_on_create_remove_and_retag(stack):
    def check(values):
        notified_bucket, queues, gallery_id, queue_arn = values
        assert notified_bucket == gallery_id, f"the notification is on {notified_bucket}, not the gallery"
        assert [q["queue_arn"] for q in queues] == [queue_arn], f"the gallery notifies {queues}, not the index queue"
        expected = {"s3:ObjectCreated:*", "s3:ObjectRemoved:*", "s3:ObjectTagging:*"}
        assert set(queues[0]["events"]) == expected, f"gallery events: {queues[0]['events']}"
        assert not queues[0].get("filter_prefix") and not queues[0].get("filter_suffix"), "the gallery notification filters keys"

    n = stack.feed.notification
    return pulumi.Output.all(n.bucket, n.queues, stack.gallery.bucket.id, stack.feed.queue.arn).apply(check)


@pulumi.runtime.test
def test_only_the_gallery_bucket_may_send_to_the_index_queue(stack):
    def check(values):
        policy_json, gallery_arn = values
        allows = [s for s in _statements(policy_json) if s["Effect"] == "Allow"]
        assert len(allows) == 1, f"the queue policy has {len(allows)} Allow statements: {allows}"
        allow = allows[0]
        assert allow["Principal"] == {"Service": "s3.amazonaws.com"} and allow["Action"] == "sqs:SendMessage", allow
        assert allow["Condition"]["ArnEquals"]["aws:SourceArn"] == gallery_arn, f"queue accepts sources other than the gallery: {allow}"
        assert allow["Condition"]["StringEquals"]["aws:SourceAccount"] == ACCOUNT, "queue accepts buckets of other accounts"

    return pulumi.Output.all(stack.feed.queue_policy.policy, stack.gallery.arn).apply(check)


@pulumi.runtime.test
def test_query_bucket_notifies_nothing(stack):
    def check(values):
        query_id, gallery_id = values[-2:]
        notified = {args.inputs["bucket"] for args in MOCKS.registrations if args.typ == "aws:s3/bucketNotification:BucketNotification"}
        assert query_id not in notified, "the query-upload bucket sends notifications: queries would become gallery images"
        assert gallery_id in notified, "the gallery sends no notifications"

    return pulumi.Output.all(_all_urns(stack), stack.query.bucket.id, stack.gallery.bucket.id).apply(check)


@pulumi.runtime.test
def test_query_uploads_expire_after_one_day(stack):
    def check(rules):
        expiring = [r for r in rules if r["status"] == "Enabled" and r["expiration"]["days"] == 1 and not r.get("filter", {}).get("prefix")]
        assert expiring, f"no enabled rule expires every query upload after 1 day: {rules}"

    return stack.query.lifecycle.rules.apply(check)


@pulumi.runtime.test
def test_query_bucket_accepts_browser_posts_from_configured_origins(stack):
    def check(rules):
        assert any("POST" in r["allowed_methods"] and r["allowed_origins"] == ["https://lookalike.example"] for r in rules), (
            f"the query bucket's CORS does not allow a presigned POST from the configured origin: {rules}"
        )

    return stack.query.cors.cors_rules.apply(check)


@pulumi.runtime.test
def test_queue_visibility_outlasts_indexer_retries(stack):
    def check(visibility):
        assert visibility >= 6 * 90, f"visibility timeout {visibility}s is under 6x the indexer timeout (90s)"

    return stack.feed.queue.visibility_timeout_seconds.apply(check)


@pulumi.runtime.test
def test_indexer_consumes_the_queue_with_partial_batch_responses(stack):
    t = stack.index_trigger

    def check(values):
        source, function, batch_size, response_types, scaling, queue_arn, indexer_arn = values
        assert source == queue_arn and function == indexer_arn, f"the trigger maps {source} to {function}"
        assert response_types == ["ReportBatchItemFailures"], f"partial batch responses are off: {response_types}"
        assert batch_size == 7, f"batch size {batch_size} is not the configured 7"
        assert scaling["maximum_concurrency"] == 3, f"maximum concurrency is {scaling}"

    return pulumi.Output.all(
        t.event_source_arn, t.function_name, t.batch_size, t.function_response_types, t.scaling_config,
        stack.feed.queue.arn, stack.functions["indexer"].function.arn,
    ).apply(check)  # fmt: skip


@pulumi.runtime.test
def test_tables_have_the_planned_keys_and_ttls(stack):
    t = stack.tables

    def check(values):
        ledger_key, idem_key, idem_ttl, events_key, events_range, events_ttl, modes = values
        assert ledger_key == "key", f"ledger hash key is {ledger_key}"
        assert (idem_key, idem_ttl["attribute_name"]) == ("id", "expiration"), "idempotency table lacks powertools' defaults"
        assert (events_key, events_range, events_ttl["attribute_name"]) == ("pk", "sk", "expires_at"), "events keys/TTL differ"
        assert set(modes) == {"PAY_PER_REQUEST"}, f"tables are not on demand: {modes}"

    return pulumi.Output.all(
        t.ledger.hash_key, t.idempotency.hash_key, t.idempotency.ttl, t.events.hash_key, t.events.range_key, t.events.ttl,
        pulumi.Output.all(t.ledger.billing_mode, t.idempotency.billing_mode, t.events.billing_mode),
    ).apply(check)  # fmt: skip


# --- roles ----------------------------------------------------------------------------------


@pulumi.runtime.test
def test_roles_name_every_action(stack):
    def check(documents):
        for name, policy_json in zip(FUNCTIONS, documents):
            for statement in _statements(policy_json):
                wild = [a for a in _listed(statement["Action"]) if "*" in a]
                assert not wild, f"the {name} role allows wildcard actions {wild}"

    return pulumi.Output.all(*_policies(stack)).apply(check)


@pulumi.runtime.test
def test_wildcard_resources_only_where_aws_requires_them(stack):
    def check(documents):
        for name, policy_json in zip(FUNCTIONS, documents):
            for statement in _statements(policy_json):
                if "*" in _listed(statement["Resource"]):
                    assert set(_listed(statement["Action"])) <= {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}, (
                        f"the {name} role allows {statement['Action']} on every resource"
                    )

    return pulumi.Output.all(*_policies(stack)).apply(check)


@pulumi.runtime.test
def test_roles_are_for_lambda_only(stack):
    def check(documents):
        for name, policy_json in zip(FUNCTIONS, documents):
            principals = [s["Principal"] for s in _statements(policy_json)]
            assert principals == [{"Service": "lambda.amazonaws.com"}], f"the {name} role can be assumed by {principals}"

    return pulumi.Output.all(*[stack.functions[n].role.assume_role_policy for n in FUNCTIONS]).apply(check)


@pulumi.runtime.test
def test_indexer_reads_gallery_objects_and_tags(stack):
    def check(values):
        policy, gallery = values
        for action in ("s3:GetObject", "s3:GetObjectTagging"):
            assert can(policy, action, f"{gallery}/cats/1.jpg"), f"the indexer cannot {action} gallery objects"

    return pulumi.Output.all(stack.functions["indexer"].policy.policy, stack.gallery.arn).apply(check)


@pulumi.runtime.test
def test_indexer_cannot_write_any_bucket(stack):
    def check(values):
        policy, gallery, query = values
        for bucket in (gallery, query):
            for action in ("s3:PutObject", "s3:DeleteObject", "s3:PutObjectTagging"):
                assert not can(policy, action, f"{bucket}/x.jpg"), f"the indexer may {action} in {bucket}"
        assert not can(policy, "s3:GetObject", f"{query}/x.jpg"), "the indexer may read query uploads"

    return pulumi.Output.all(stack.functions["indexer"].policy.policy, stack.gallery.arn, stack.query.arn).apply(check)


@pulumi.runtime.test
def test_indexer_consumes_but_cannot_send_to_the_queue(stack):
    def check(values):
        policy, queue = values
        for action in ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"):
            assert can(policy, action, queue), f"the indexer cannot {action} on the index queue"
        assert not can(policy, "sqs:SendMessage", queue), "the indexer may send to its own queue"

    return pulumi.Output.all(stack.functions["indexer"].policy.policy, stack.feed.queue.arn).apply(check)


@pulumi.runtime.test
def test_indexer_tables_are_ledger_and_idempotency_only(stack):
    def check(values):
        policy, ledger, idempotency, events = values
        for table in (ledger, idempotency):
            assert can(policy, "dynamodb:PutItem", table) and can(policy, "dynamodb:GetItem", table), f"indexer cannot use {table}"
        assert not can(policy, "dynamodb:PutItem", events), "the indexer may write events"

    t = stack.tables
    return pulumi.Output.all(stack.functions["indexer"].policy.policy, t.ledger.arn, t.idempotency.arn, t.events.arn).apply(check)


@pulumi.runtime.test
def test_search_cannot_send_to_the_index_queue(stack):
    def check(values):
        policy, queue, dlq = values
        for arn in (queue, dlq):
            for action in ("sqs:SendMessage", "sqs:ReceiveMessage", "sqs:DeleteMessage"):
                assert not can(policy, action, arn), f"the search function may {action} on {arn}"

    f = stack.feed
    return pulumi.Output.all(stack.functions["search"].policy.policy, f.queue.arn, f.dead_letter_queue.arn).apply(check)


@pulumi.runtime.test
def test_search_reads_the_gallery_but_writes_only_query_uploads(stack):
    def check(values):
        policy, gallery, query = values
        assert can(policy, "s3:GetObject", f"{gallery}/a.jpg"), "the search function cannot read gallery images"
        assert not can(policy, "s3:PutObject", f"{gallery}/a.jpg"), "the search function may write the gallery"
        assert not can(policy, "s3:DeleteObject", f"{gallery}/a.jpg"), "the search function may delete gallery images"
        assert can(policy, "s3:PutObject", f"{query}/u/1") and can(policy, "s3:GetObject", f"{query}/u/1"), (
            "the search function cannot sign upload POSTs or read the uploads"
        )

    return pulumi.Output.all(stack.functions["search"].policy.policy, stack.gallery.arn, stack.query.arn).apply(check)


@pulumi.runtime.test
def test_search_writes_events_and_no_other_table(stack):
    def check(values):
        policy, events, ledger, idempotency = values
        assert can(policy, "dynamodb:PutItem", events), "the search function cannot write events"
        for table in (ledger, idempotency):
            assert not any(can(policy, a, table) for a in ("dynamodb:PutItem", "dynamodb:GetItem")), f"search may use {table}"

    t = stack.tables
    return pulumi.Output.all(stack.functions["search"].policy.policy, t.events.arn, t.ledger.arn, t.idempotency.arn).apply(check)


@pulumi.runtime.test
def test_admin_enqueues_backfill_without_reading_images(stack):
    def check(values):
        policy, queue, gallery = values
        assert can(policy, "sqs:SendMessage", queue), "the admin function cannot enqueue a backfill"
        assert can(policy, "s3:ListBucket", gallery), "the admin function cannot list the gallery for a backfill"
        assert not can(policy, "s3:GetObject", f"{gallery}/a.jpg"), "the admin function may read gallery images"

    return pulumi.Output.all(stack.functions["admin"].policy.policy, stack.feed.queue.arn, stack.gallery.arn).apply(check)


@pulumi.runtime.test
def test_each_function_writes_only_its_own_log_group(stack):
    def check(values):
        documents, log_arns = values[:3], values[3:]
        for name, policy, own in zip(FUNCTIONS, documents, log_arns):
            assert can(policy, "logs:PutLogEvents", f"{own}:log-stream:2026/01/01"), f"{name} cannot write its logs"
            for other in set(log_arns) - {own}:
                assert not can(policy, "logs:PutLogEvents", f"{other}:log-stream:x"), f"{name} may write {other}"

    return pulumi.Output.all(*_policies(stack), *[stack.functions[n].log_group.arn for n in FUNCTIONS]).apply(check)


# --- OpenSearch -----------------------------------------------------------------------------


def _index_document(vectors) -> str:
    """A document path inside the configured index, as IAM sees it on a domain."""
    return pulumi.Output.concat(vectors.arn, "/", vectors.index, "/_doc/abc")


@pulumi.runtime.test
def test_domain_roles_reach_only_the_index(domain):
    def check(values):
        indexer, search, admin, document, other_index = values
        assert can(indexer, "es:ESHttpPut", document) and can(admin, "es:ESHttpDelete", document), "writers cannot write"
        assert can(search, "es:ESHttpPost", document), "the search function cannot query the index"
        assert not can(search, "es:ESHttpPut", document) and not can(search, "es:ESHttpDelete", document), "search may write"
        assert not any(can(p, "es:ESHttpGet", other_index) for p in (indexer, search, admin)), "a role reaches other indexes"

    v = domain.vectors
    other = pulumi.Output.concat(v.arn, "/other/_search")
    return pulumi.Output.all(*_policies(domain), _index_document(v), other).apply(check)


@pulumi.runtime.test
def test_serverless_roles_need_the_collection(serverless):
    def check(values):
        *documents, collection = values
        for name, policy in zip(FUNCTIONS, documents):
            assert can(policy, "aoss:APIAccessAll", collection), f"the {name} role cannot reach the collection"
            assert not can(policy, "aoss:APIAccessAll", collection.replace("c0ll3ct10n", "other")), f"{name} reaches others"

    return pulumi.Output.all(*_policies(serverless), serverless.vectors.arn).apply(check)


@pulumi.runtime.test
def test_serverless_collection_is_a_vector_collection(serverless):
    collection = serverless.vectors.resources["collection"]

    def check(values):
        kind, name = values
        assert kind == "VECTORSEARCH", f"the collection type is {kind}"
        assert name == "lkserverless", f"the collection is named {name}"

    return pulumi.Output.all(collection.type, collection.name).apply(check)


@pulumi.runtime.test
def test_serverless_collection_is_nextgen(serverless):
    """Classic vector collections refuse custom document ids, which the store's upserts need."""
    group = serverless.vectors.resources["collection_group"]
    collection = serverless.vectors.resources["collection"]

    def check(values):
        generation, group_name, collection_group = values
        assert generation == "NEXTGEN", f"the collection group is {generation}"
        assert collection_group == group_name, f"the collection is in group {collection_group}, not {group_name}"

    return pulumi.Output.all(group.generation, group.name, collection.collection_group_name).apply(check)


@pulumi.runtime.test
def test_serverless_encryption_policy_covers_the_collection(serverless):
    policy = serverless.vectors.resources["encryption"]

    def check(values):
        kind, document = values
        rules = json.loads(document)["Rules"]
        assert kind == "encryption", f"policy type {kind}"
        assert {"ResourceType": "collection", "Resource": ["collection/lkserverless"]} in rules, f"rules {rules}"

    return pulumi.Output.all(policy.type, policy.policy).apply(check)


@pulumi.runtime.test
def test_serverless_network_policy_opens_no_dashboards(serverless):
    policy = serverless.vectors.resources["network"]

    def check(document):
        resource_types = {rule["ResourceType"] for entry in json.loads(document) for rule in entry["Rules"]}
        assert resource_types == {"collection"}, f"the network policy opens {resource_types}"

    return policy.policy.apply(check)


@pulumi.runtime.test
def test_serverless_data_access_grants_only_the_function_roles(serverless):
    policy = serverless.vectors.resources["data_access"]

    def check(values):
        document, indexer, search, admin = values
        granted = {principal: rule["Permission"] for entry in json.loads(document) for principal in entry["Principal"] for rule in entry["Rules"]}
        assert set(granted) == {indexer, search, admin}, f"data access is granted to {sorted(granted)}"
        assert set(granted[search]) == {"aoss:DescribeIndex", "aoss:ReadDocument"}, f"search may {granted[search]}"
        assert "aoss:WriteDocument" in granted[indexer] and "aoss:DeleteIndex" not in granted[indexer], granted[indexer]
        resources = {r for entry in json.loads(document) for rule in entry["Rules"] for r in rule["Resource"]}
        assert resources == {"index/lkserverless/lookalike*"}, f"data access covers {resources}"

    roles = [serverless.functions[n].role.arn for n in FUNCTIONS]
    return pulumi.Output.all(policy.policy, *roles).apply(check)


@pulumi.runtime.test
def test_domain_has_fine_grained_access_and_encryption(domain):
    d = domain.vectors.resources["domain"]

    def check(values):
        security, at_rest, node_to_node = values
        assert security["enabled"] and not security["internal_user_database_enabled"], f"fine-grained access: {security}"
        assert not security.get("anonymous_auth_enabled"), "anonymous access is on"
        assert security["master_user_options"]["master_user_arn"] == MASTER_USER, "the master user is not the configured ARN"
        assert at_rest["enabled"] and node_to_node["enabled"], f"encryption at rest {at_rest}, between nodes {node_to_node}"

    return pulumi.Output.all(d.advanced_security_options, d.encrypt_at_rest, d.node_to_node_encryption).apply(check)


@pulumi.runtime.test
def test_domain_enforces_https(domain):
    def check(options):
        assert options["enforce_https"], "the domain accepts plain HTTP"
        assert options["tls_security_policy"].startswith("Policy-Min-TLS-1-2"), f"TLS policy {options['tls_security_policy']}"

    return domain.vectors.resources["domain"].domain_endpoint_options.apply(check)


@pulumi.runtime.test
def test_domain_size_comes_from_config(domain):
    d = domain.vectors.resources["domain"]

    def check(values):
        cluster, ebs = values
        assert (cluster["instance_type"], cluster["instance_count"]) == ("r6g.large.search", 2), f"cluster {cluster}"
        assert cluster["zone_awareness_enabled"], "two nodes are not spread over two zones"
        assert ebs["volume_size"] == 40, f"volume {ebs}"

    return pulumi.Output.all(d.cluster_config, d.ebs_options).apply(check)


@pulumi.runtime.test
def test_domain_policy_admits_only_the_function_roles_and_master(domain):
    def check(values):
        document, *roles = values
        principals = {p for s in _statements(document) for p in _listed(s["Principal"]["AWS"])}
        assert principals == {MASTER_USER, *roles}, f"the domain admits {sorted(principals)}"

    roles = [domain.functions[n].role.arn for n in FUNCTIONS]
    return pulumi.Output.all(domain.vectors.resources["domain_policy"].access_policies, *roles).apply(check)


# --- API ------------------------------------------------------------------------------------


@pulumi.runtime.test
def test_admin_routes_require_iam(stack):
    routes = stack.api.routes

    def check(values):
        keys = [f"ANY {path}" for path in ADMIN_ROUTE_PATHS]
        for key, authorization in zip(keys, values):
            assert authorization == "AWS_IAM", f"admin route {key} is open ({authorization})"

    return pulumi.Output.all(*[routes[f"ANY {path}"].authorization_type for path in ADMIN_ROUTE_PATHS]).apply(check)


@pulumi.runtime.test
def test_admin_routes_go_to_the_admin_function(stack):
    routes = stack.api.routes

    def check(values):
        default_target, *admin_targets = values
        assert len(set(admin_targets)) == 1, f"admin routes go to several integrations: {admin_targets}"
        assert admin_targets[0] != default_target, "admin routes go to the search function"

    targets = [routes[f"ANY {path}"].target for path in ADMIN_ROUTE_PATHS]
    return pulumi.Output.all(routes["$default"].target, *targets).apply(check)


@pulumi.runtime.test
def test_default_route_is_public(stack):
    def check(authorization):
        assert authorization == "NONE", f"the public $default route requires {authorization}"

    return stack.api.routes["$default"].authorization_type.apply(check)


@pulumi.runtime.test
def test_stage_is_throttled(stack):
    def check(values):
        name, auto_deploy, settings = values
        assert name == "$default" and auto_deploy, f"stage {name} auto_deploy={auto_deploy}"
        assert settings["throttling_rate_limit"] == 12.5 and settings["throttling_burst_limit"] == 25, f"throttling {settings}"

    s = stack.api.stage
    return pulumi.Output.all(s.name, s.auto_deploy, s.default_route_settings).apply(check)


@pulumi.runtime.test
def test_api_cors_allows_the_configured_origins(stack):
    def check(cors):
        assert cors["allow_origins"] == ["https://lookalike.example"], f"CORS origins {cors['allow_origins']}"
        assert "POST" in cors["allow_methods"], f"CORS methods {cors['allow_methods']}"

    return stack.api.api.cors_configuration.apply(check)


@pulumi.runtime.test
def test_admin_invoke_policy_covers_only_admin_routes(stack):
    def check(values):
        policy, execution_arn = values
        stage = f"{execution_arn}/$default"
        for allowed in ("PUT/blocklist/x1", "GET/blocklist", "POST/admin/backfill"):
            assert can(policy, "execute-api:Invoke", f"{stage}/{allowed}"), f"the admin policy does not allow {allowed}"
        for public in ("POST/search", "GET/images/x1", "POST/events"):
            assert not can(policy, "execute-api:Invoke", f"{stage}/{public}"), f"the admin policy allows {public}"

    return pulumi.Output.all(stack.api.admin_invoke_policy.policy, stack.api.api.execution_arn).apply(check)


@pulumi.runtime.test
def test_only_this_api_may_invoke_the_functions(stack):
    def check(values):
        execution_arn, *sources = values
        for source in sources:
            assert source.startswith(f"{execution_arn}/"), f"an invoke permission is not limited to this API: {source}"

    permissions = stack.api.invoke_permissions
    return pulumi.Output.all(stack.api.api.execution_arn, *[p.source_arn for p in permissions.values()]).apply(check)


# --- logs and alarms ------------------------------------------------------------------------


@pulumi.runtime.test
def test_log_groups_keep_logs_for_the_configured_days(stack):
    groups = [stack.functions[n].log_group for n in FUNCTIONS] + [stack.api.access_log_group]

    def check(values):
        for name, retention in zip(values[::2], values[1::2]):
            assert retention == 14, f"log group {name} keeps logs {retention} days, not the configured 14"

    return pulumi.Output.all(*[v for g in groups for v in (g.name, g.retention_in_days)]).apply(check)


@pulumi.runtime.test
def test_functions_log_to_their_retained_group(stack):
    def check(values):
        for name, config, group in zip(FUNCTIONS, values[:3], values[3:]):
            assert config["log_group"] == group, f"the {name} function logs to {config['log_group']}, not {group}"

    f = stack.functions
    return pulumi.Output.all(*[f[n].function.logging_config for n in FUNCTIONS], *[f[n].log_group.name for n in FUNCTIONS]).apply(check)


@pulumi.runtime.test
def test_dead_letter_alarm_fires_on_the_first_message(stack):
    a = stack.alarms.dead_letters

    def check(values):
        dimensions, metric, threshold, operator, actions, dlq_name, topic = values
        assert dimensions == {"QueueName": dlq_name}, f"the DLQ alarm watches {dimensions}"
        assert metric == "ApproximateNumberOfMessagesVisible" and threshold == 0 and operator == "GreaterThanThreshold", (
            f"the DLQ alarm fires on {metric} {operator} {threshold}"
        )
        assert actions == [topic], f"the DLQ alarm notifies {actions}"

    return pulumi.Output.all(
        a.dimensions, a.metric_name, a.threshold, a.comparison_operator, a.alarm_actions,
        stack.feed.dead_letter_queue.name, stack.alarms.topic.arn,
    ).apply(check)  # fmt: skip


@pulumi.runtime.test
def test_every_function_has_an_error_alarm(stack):
    alarms = stack.alarms.function_errors

    def check(values):
        for name, dimensions, metric, function_name in zip(FUNCTIONS, values[:3], values[3:6], values[6:]):
            assert metric == "Errors" and dimensions == {"FunctionName": function_name}, f"{name}'s alarm watches {metric} {dimensions}"

    assert set(alarms) == set(FUNCTIONS), f"error alarms exist for {sorted(alarms)}"
    return pulumi.Output.all(
        *[alarms[n].dimensions for n in FUNCTIONS], *[alarms[n].metric_name for n in FUNCTIONS],
        *[stack.functions[n].function.name for n in FUNCTIONS],
    ).apply(check)  # fmt: skip


# --- functions and layers -------------------------------------------------------------------


@pulumi.runtime.test
def test_functions_run_where_the_layers_were_built(stack):
    def check(values):
        for name, runtime, architectures in zip(FUNCTIONS, values[::2], values[1::2]):
            assert runtime == layer_build.LAMBDA_RUNTIME, f"{name} runs {runtime}, the layers are built for {layer_build.LAMBDA_RUNTIME}"
            assert architectures == [layer_build.LAMBDA_ARCHITECTURE], f"{name} runs on {architectures}"

    f = stack.functions
    return pulumi.Output.all(*[v for n in FUNCTIONS for v in (f[n].function.runtime, f[n].function.architectures)]).apply(check)


@pulumi.runtime.test
def test_layers_are_published_for_the_functions_platform(stack):
    def check(values):
        for runtimes, architectures in zip(values[::2], values[1::2]):
            assert runtimes == [layer_build.LAMBDA_RUNTIME] and architectures == [layer_build.LAMBDA_ARCHITECTURE], (
                f"a layer is published for {runtimes} {architectures}"
            )

    layers = stack.layers.values()
    return pulumi.Output.all(*[v for layer in layers for v in (layer.compatible_runtimes, layer.compatible_architectures)]).apply(check)


@pulumi.runtime.test
def test_functions_use_core_deps_and_model_layers(stack):
    def check(values):
        layer_arns, function_layers = values[:3], values[3:]
        for name, attached in zip(FUNCTIONS, function_layers):
            assert attached == layer_arns, f"the {name} function attaches {attached}"

    return pulumi.Output.all(
        *[stack.layers[layer].arn for layer in layer_build.LAYER_NAMES], *[stack.functions[n].function.layers for n in FUNCTIONS]
    ).apply(check)


@pulumi.runtime.test
def test_model_path_is_where_the_model_layer_puts_it(stack):
    def check(environments):
        for name, environment in zip(FUNCTIONS, environments):
            assert environment["variables"]["LOOKALIKE_MODEL"] == f"/opt/{layer_build.MODEL_ARCNAME}", (
                f"{name} looks for the model at {environment['variables']['LOOKALIKE_MODEL']}"
            )

    return pulumi.Output.all(*[stack.functions[n].function.environment for n in FUNCTIONS]).apply(check)


@pulumi.runtime.test
def test_function_memory_and_timeouts_come_from_config(stack):
    expected = {"indexer": (3008, 90), "search": (1769, 25), "admin": (512, 20)}

    def check(values):
        for name, memory, timeout in zip(FUNCTIONS, values[::2], values[1::2]):
            assert (memory, timeout) == expected[name], f"{name} has {memory} MB / {timeout} s, not {expected[name]}"

    f = stack.functions
    return pulumi.Output.all(*[v for n in FUNCTIONS for v in (f[n].function.memory_size, f[n].function.timeout)]).apply(check)


@pulumi.runtime.test
def test_environment_points_at_this_stacks_resources(stack):
    v = stack.vectors

    def check(values):
        environment, endpoint, gallery, query, queue_url, events, service = values
        variables = environment["variables"]
        expected = {
            "OPENSEARCH_ENDPOINT": endpoint, "OPENSEARCH_SERVICE": service, "OPENSEARCH_INDEX": v.index,
            "GALLERY_BUCKET": gallery, "QUERY_BUCKET": query, "INDEX_QUEUE_URL": queue_url, "EVENTS_TABLE": events,
        }  # fmt: skip
        wrong = {key: variables.get(key) for key, value in expected.items() if variables.get(key) != value}
        assert not wrong, f"environment variables point elsewhere: {wrong}"
        assert variables["OPENSEARCH_ENDPOINT"].startswith("https://"), f"endpoint {variables['OPENSEARCH_ENDPOINT']}"

    return pulumi.Output.all(
        stack.functions["search"].function.environment, v.endpoint, stack.gallery.bucket.bucket,
        stack.query.bucket.bucket, stack.feed.queue.url, stack.tables.events.name, v.service,
    ).apply(check)  # fmt: skip


@pulumi.runtime.test
def test_region_vectors_follow_the_indexer_setting(serverless, domain):
    def check(values):
        off, on = (environment["variables"].get("INDEX_REGIONS") for environment in values)
        assert (off, on) == ("false", "true"), f"INDEX_REGIONS is {off!r} with regions off, {on!r} with regions on"

    return pulumi.Output.all(
        serverless.functions["indexer"].function.environment, domain.functions["indexer"].function.environment
    ).apply(check)


@pulumi.runtime.test
def test_every_function_uses_the_configured_index(stack):
    def check(values):
        index, *environments = values
        used = {name: environment["variables"].get("OPENSEARCH_INDEX") for name, environment in zip(FUNCTIONS, environments)}
        assert set(used.values()) == {index}, f"functions use indexes {used}, configured {index!r}: a model switch would mix them"

    return pulumi.Output.all(stack.vectors.index, *[stack.functions[n].function.environment for n in FUNCTIONS]).apply(check)


def test_opensearch_service_matches_the_mode(serverless, domain):
    assert (serverless.vectors.service, domain.vectors.service) == ("aoss", "es"), "SigV4 service names do not match the modes"


@pulumi.runtime.test
def test_hnsw_parameters_come_from_config(serverless):
    def check(environment):
        variables = environment["variables"]
        knn = (variables["KNN_M"], variables["KNN_EF_CONSTRUCTION"], variables["KNN_EF_SEARCH"])
        assert knn == ("24", "256", "64"), f"HNSW parameters {knn} are not the configured 24/256/64"

    return serverless.functions["indexer"].function.environment.apply(check)


# --- configuration --------------------------------------------------------------------------


@pytest.fixture
def pulumi_config():
    """Set stack configuration as `pulumi config set` would, and clear it afterwards."""
    yield pulumi.runtime.set_all_config
    pulumi.runtime.set_all_config({})


def test_unset_config_gives_the_defaults(pulumi_config):
    pulumi_config({})
    loaded = load()
    assert loaded == StackConfig(name="project-stack"), f"defaults differ from StackConfig's: {loaded}"


def test_config_keys_reach_the_stack_config(pulumi_config):
    pulumi_config(
        {
            "opensearch:mode": "domain",
            "opensearch:masterUserArn": MASTER_USER,
            "opensearch:instanceType": "m6g.large.search",
            "opensearch:hnswEfSearch": "200",
            "indexer:memory": "4096",
            "indexer:batchSize": "5",
            "indexer:regions": "true",
            "search:timeout": "20",
            "api:rateLimit": "7.5",
            "api:corsOrigins": '["https://a.example"]',
            "lookalike:logRetentionDays": "90",
            "lookalike:forceDestroy": "true",
            "lookalike:tracing": "false",
        }
    )
    loaded = load()
    observed = (
        loaded.opensearch.mode, loaded.opensearch.master_user_arn, loaded.opensearch.instance_type,
        loaded.opensearch.hnsw_ef_search, loaded.indexer.memory_mb,
        loaded.batch_size, loaded.regions, loaded.search.timeout_s, loaded.api_rate_limit, loaded.cors_origins,
        loaded.log_retention_days, loaded.force_destroy, loaded.tracing,
    )  # fmt: skip
    expected = (
        "domain", MASTER_USER, "m6g.large.search", 200, 4096, 5, True, 20, 7.5, ("https://a.example",), 90, True, False
    )
    assert observed == expected, f"config keys were not read: {observed}"


@pulumi.runtime.test
def test_the_program_builds_the_stack_from_config(pulumi_config, tmp_path):
    """infra/__main__.py run as Pulumi runs it, with the configured layers folder."""
    for layer in layer_build.LAYER_NAMES:
        (tmp_path / f"{layer}.zip").write_bytes(b"")
    pulumi_config({"lookalike:layersDir": str(tmp_path), "opensearch:mode": "serverless"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        program = runpy.run_path(str(REPO / "infra"), run_name="__main__")

    def check(values):
        url, name = values
        assert url.startswith("https://"), f"the program exports api_url {url}"
        assert name == "project-stack", f"the program named the stack {name}"

    return pulumi.Output.all(program["stack"].api_url, program["stack"].name).apply(check)


def test_domain_mode_requires_a_master_user():
    with pytest.raises(ValueError, match="masterUserArn"):
        OpenSearchSettings(mode="domain").check()


def test_search_timeout_must_fit_api_gateway():
    with pytest.raises(ValueError, match="search:timeout"):
        StackConfig(search=FunctionSettings(memory_mb=1024, timeout_s=60))


def test_batch_size_is_capped_at_ten():
    with pytest.raises(ValueError, match="batchSize"):
        StackConfig(batch_size=11)


def test_missing_layers_say_how_to_build_them(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"python -m layers.build"):
        build_stack(StackConfig(name="lkmissing", layers_dir=tmp_path))


def test_function_folders_define_the_handler():
    """The real handler folders the program deploys define `lambda_handler` in app.py."""
    for name in FUNCTIONS:
        app = REPO / "functions" / name / "app.py"
        assert app.is_file(), f"{app.relative_to(REPO)} is missing"
        functions = {node.name for node in ast.walk(ast.parse(app.read_text())) if isinstance(node, ast.FunctionDef)}
        assert "lambda_handler" in functions, f"{app.relative_to(REPO)} defines no lambda_handler"
