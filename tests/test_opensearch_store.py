"""What is particular to the OpenSearch store: the requests it sends (golden bodies), the score
conversion, SigV4 clients, the methods it refuses, Serverless, and concurrent writers.

The shared VectorStore behaviour is tests/test_store_contract.py's; these run against the
loopback server (tests/opensearch_loopback.py) through the real opensearch-py client.
Set LOOKALIKE_UPDATE_GOLDEN=1 to rewrite tests/golden/opensearch/*.json after a deliberate change.
"""

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lookalike.errors import InvalidParameterError
from lookalike.knn import KnnMethod
from lookalike.stores.base import ModelVersionMismatchError
from lookalike.aws.sigv4 import service_for_host, signed_client, signed_store
from lookalike.stores.opensearch import OpenSearchStore, StoreWriteError, build_client
from lookalike.stores.opensearch import store as opensearch_store

from lookalike.stores.opensearch.documents import K_MAX, cosine_from_score, document_id, region_document_id
from tests.support.opensearch_loopback import LoopbackOpenSearch

GOLDEN = Path(__file__).parent / "golden" / "opensearch"


def store_at(server: LoopbackOpenSearch, index: str = "lookalike", **options) -> OpenSearchStore:
    return OpenSearchStore(build_client(server.url), index, **options)


def hit_ids(hits) -> list[str]:
    return [hit.id for hit in hits]


def unit_rows(n: int, dim: int = 8, seed: int = 0) -> np.ndarray:
    rows = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


@pytest.fixture
def aws_credentials(monkeypatch, tmp_path):
    """Static credentials from the environment: boto3 finds them without any network."""
    for name in ("AWS_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))


# -- golden request bodies ----------------------------------------------------------------------------


def recorded_requests(server: LoopbackOpenSearch) -> dict:
    """One small session: create the index, write (tags, a region, a delete), search with a tag filter."""
    store = store_at(server, method=KnnMethod(name="hnsw", m=24, ef_construction=128, ef_search=64))
    store.check_model_version("effnet-lite0-test")
    vectors = np.array([[3, 4, 0, 0], [0, 2, 0, 0]], dtype=np.float32)
    store.upsert(
        ["kitchen/lamp 1.jpg", "b.png"],
        vectors,
        ["hash-lamp", "hash-b"],
        [{"room": "kitchen", "colour": "red"}, {}],
        regions=[np.array([[0, 0, 1, 1]], dtype=np.float32), None],
    )
    store.delete(["gone.jpg"])
    store.block(["blocked/one.jpg"])
    store.persist()
    store.search(np.array([[1, 0, 0, 0]], dtype=np.float32), k=2, tags={"room": "kitchen", "colour": "red"})
    (create,) = server.requests_to("PUT", "/lookalike")
    bulks = server.requests_to("POST", "/_bulk")
    (search,) = server.requests_to("POST", "/lookalike/_search")
    return {
        "create_index": create.json(),
        "bulk_documents": bulks[0].ndjson(),
        "bulk_blocklist": bulks[1].ndjson(),
        "knn_query": search.json(),
    }


@pytest.mark.parametrize("name", ["create_index", "bulk_documents", "bulk_blocklist", "knn_query"])
def test_request_bodies_match_the_golden_files(loopback, name):
    body = recorded_requests(loopback)[name]
    path = GOLDEN / f"{name}.json"
    if os.environ.get("LOOKALIKE_UPDATE_GOLDEN"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(body, indent=2, ensure_ascii=False) + "\n")
    assert body == json.loads(path.read_text()), f"the {name} request changed; see {path}"


def test_the_golden_bodies_say_what_opensearch_requires(loopback):
    """What the goldens pin of OpenSearch's rules (the mapping, k and size, the filter inside knn),
    spelled out so that a regenerated golden cannot lose them."""
    requests = recorded_requests(loopback)
    vector = requests["create_index"]["mappings"]["properties"]["embedding"]
    assert vector["method"] == {
        "name": "hnsw",
        "engine": "faiss",
        "space_type": "innerproduct",
        "parameters": {"m": 24, "ef_construction": 128},
    }
    assert vector["compression_level"] == "1x" and vector["dimension"] == 4
    assert requests["create_index"]["settings"] == {"index.knn": True, "index.knn.algo_param.ef_search": 64}
    assert requests["create_index"]["mappings"]["_meta"] == {"dim": 4, "model_version": "effnet-lite0-test"}
    knn = requests["knn_query"]["query"]["knn"]["embedding"]
    assert requests["knn_query"]["size"] == knn["k"] == 2 * 5  # k images need k * (1 + MAX_REGIONS) documents
    assert "filter" in knn and "post_filter" not in requests["knn_query"]
    indexed = [line["index"]["_id"] for line in requests["bulk_documents"] if "index" in line]
    assert indexed == [
        document_id("kitchen/lamp 1.jpg"),
        region_document_id("kitchen/lamp 1.jpg", 1),
        document_id("b.png"),
    ]
    deletes = [line["delete"]["_id"] for line in requests["bulk_documents"] if "delete" in line]
    assert document_id("gone.jpg") in deletes
    assert {region_document_id("gone.jpg", n) for n in range(1, 5)} <= set(deletes)
    assert {region_document_id("kitchen/lamp 1.jpg", n) for n in range(2, 5)} <= set(deletes)


def test_document_ids_are_deterministic_and_short_for_any_key():
    long_key = "ünïcode/" + "x" * 2000 + ".jpg"
    assert document_id(long_key) == document_id(long_key)
    assert len(document_id(long_key).encode()) == 64 and document_id("a/b") != document_id("a%2Fb")
    assert region_document_id("a/b", 3) == document_id("a/b") + "#r3"


# -- scores -------------------------------------------------------------------------------------------


def faiss_innerproduct_score(ip: np.float32) -> np.float32:
    """faiss innerproduct (OpenSearch docs, "Spaces"), in float32 as OpenSearch computes it."""
    one = np.float32(1)
    return ip + one if ip > 0 else one / (one - ip)


@pytest.mark.parametrize("ip", [-1.0, -0.999, -0.5, -1e-7, 0.0, 1e-7, 0.25, 0.5, 0.999, 1.0])
def test_cosine_from_score_inverts_both_branches(ip):
    score = faiss_innerproduct_score(np.float32(ip))
    assert cosine_from_score(float(score)) == pytest.approx(ip, abs=2e-7)


def test_cosine_from_score_on_worked_values():
    assert cosine_from_score(12.0) == 11.0  # [1,2]·[3,4] = 11
    assert cosine_from_score(0.25) == -3.0  # [1,2]·[-1,-1]
    assert cosine_from_score(1.0) == 0.0  # the branches meet


def test_search_scores_are_cosines_for_random_pairs(loopback):
    store = store_at(loopback)
    vectors = unit_rows(200, seed=1)
    ids = [f"v{i}" for i in range(200)]
    store.upsert(ids, vectors, ids)
    store.persist()
    query = unit_rows(1, seed=2)
    (hits,) = store.search(query, k=200)
    cosines = dict(zip(ids, (vectors @ query[0]).tolist()))
    assert len(hits) == 200 and min(cosines.values()) < -0.5
    for hit in hits:
        assert hit.score == pytest.approx(cosines[hit.id], abs=1e-6)


# -- clients and SigV4 ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "service"),
    [
        ("search-gallery-abc123.eu-west-1.es.amazonaws.com", "es"),
        ("0123456789abcdef.us-east-2.aoss.amazonaws.com", "aoss"),
        ("vpc-gallery-x.cn-north-1.es.amazonaws.com.cn", "es"),
        ("opensearch.example.com", None),
        ("localhost", None),
    ],
)
def test_service_for_host(host, service):
    assert service_for_host(host) == service


@pytest.mark.parametrize(
    ("endpoint", "service", "region"),
    [
        ("https://search-gallery-abc123.eu-west-1.es.amazonaws.com", "es", "eu-west-1"),
        ("https://0123456789abcdef.us-east-2.aoss.amazonaws.com", "aoss", "us-east-2"),
    ],
)
def test_sigv4_clients_sign_for_the_service_and_the_hosts_region(aws_credentials, endpoint, service, region):
    connection = signed_client(endpoint, service).transport.get_connection()
    auth = connection.session.auth
    assert (auth.service, auth.signer.region, auth.signer.service) == (service, region, service)
    assert connection.host == endpoint + ":443" and connection.session.verify  # a CA bundle: certificates are checked


def test_the_region_comes_from_the_environment_when_the_host_has_none(aws_credentials, monkeypatch):
    with pytest.raises(InvalidParameterError, match="region"):
        signed_client("https://search.example.com", "es")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ap-south-1")  # Lambda sets it
    assert (
        signed_client("https://search.example.com", "es").transport.get_connection().session.auth.signer.region
        == "ap-south-1"
    )
    explicit = signed_client("https://search.example.com", "aoss", region="sa-east-1")
    assert explicit.transport.get_connection().session.auth.signer.region == "sa-east-1"


def test_an_unknown_service_is_refused(aws_credentials):
    with pytest.raises(InvalidParameterError, match="es, aoss"):
        signed_client("https://search.example.com", "opensearch", region="eu-west-1")


def test_signed_requests_reach_the_server_and_serverless_never_refreshes(aws_credentials):
    server = LoopbackOpenSearch(serverless=True).start()
    try:
        store = signed_store(server.url, "gallery", service="aoss", region="eu-west-1")
        assert store.serverless
        store.upsert(["a"], unit_rows(1), ["h"])
        store.block(["b"])
        store.persist()
        for request in server.requests:
            assert request.headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
            assert "/eu-west-1/aoss/aws4_request" in request.headers["authorization"]
            assert request.headers["x-amz-date"] and request.headers["x-amz-content-sha256"]
            assert "refresh" not in request.params and not request.path.endswith("/_refresh")
        reader = signed_store(server.url, "gallery", service="aoss", region="eu-west-1")
        assert store.count() == 0 and reader.blocked() == set()  # searchable once the collection refreshes
        server.publish()
        assert store.count() == 1 and reader.refresh() is True and reader.blocked() == {"b"}
        assert not server.failures
    finally:
        server.stop()


def test_basic_auth_from_the_url_and_no_boto3_needed(loopback, monkeypatch):
    monkeypatch.setitem(sys.modules, "boto3", None)  # `import boto3` now fails
    host = loopback.url.removeprefix("http://")
    store = OpenSearchStore.from_endpoint(f"http://user:p%40ss@{host}", "gallery")
    assert store.count() == 0 and not store.serverless
    expected = "Basic " + base64.b64encode(b"user:p@ss").decode()
    assert {request.headers.get("authorization") for request in loopback.requests} == {expected}


def test_only_a_signing_client_imports_the_aws_sdk():
    code = (
        "import sys; from lookalike.stores.opensearch import OpenSearchStore, build_client; "
        "build_client('http://user:pw@localhost:9200'); "
        "sys.exit(sorted({'boto3', 'botocore', 'lookalike.aws.sigv4'} & set(sys.modules)) or None)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, f"a client without SigV4 imported {result.stderr.strip()}"


def test_an_endpoint_must_be_an_http_url():
    with pytest.raises(InvalidParameterError, match="http"):
        build_client("search-gallery.eu-west-1.es.amazonaws.com")


# -- methods --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "message"),
    [
        (KnnMethod(name="flat"), "no flat"),
        (KnnMethod(name="ivf"), "training"),
        (KnnMethod(name="hnsw", encoder="pq", pq_m=2), "training"),
    ],
)
def test_methods_opensearch_cannot_build_without_training_are_refused_before_any_request(loopback, method, message):
    with pytest.raises(InvalidParameterError, match=message):
        store_at(loopback, method=method)
    assert loopback.requests == []


def test_an_existing_index_keeps_its_own_mapping(loopback):
    store_at(loopback, dim=8, method=KnnMethod(name="hnsw", m=8)).persist()
    reopened = store_at(loopback, method=KnnMethod(name="hnsw", m=48))
    assert reopened.dim == 8
    reopened.upsert(["a"], unit_rows(1), ["h"])
    reopened.persist()
    (create,) = loopback.requests_to("PUT", "/lookalike")
    assert create.json()["mappings"]["properties"]["embedding"]["method"]["parameters"]["m"] == 8


def test_k_beyond_what_opensearch_answers_asks_for_its_largest(loopback):
    store = store_at(loopback)
    store.upsert(["a", "b"], unit_rows(2), ["ha", "hb"])
    store.persist()
    (hits,) = store.search(unit_rows(1), k=3 * K_MAX)
    assert sorted(hit_ids(hits)) == ["a", "b"]
    (request,) = loopback.requests_to("POST", "/lookalike/_search")
    assert request.json()["size"] == request.json()["query"]["knn"]["embedding"]["k"] == K_MAX


# -- Serverless and failed writes ------------------------------------------------------------------------


def test_a_classic_serverless_collection_is_refused_and_the_writes_are_kept():
    server = LoopbackOpenSearch(serverless=True, custom_ids=False).start()
    try:
        store = OpenSearchStore(build_client(server.url), "gallery", serverless=True)
        store.upsert(["a", "b"], unit_rows(2), ["ha", "hb"])
        with pytest.raises(StoreWriteError, match="NextGen") as failure:
            store.persist()
        assert failure.value.status == 502 and "Document ID is not supported" in str(failure.value)
        server.custom_ids = True  # as if pointed at a NextGen collection: sending again converges
        store.persist()
        server.publish()
        assert store.content_hashes() == {"a": "ha", "b": "hb"}
        assert not server.failures
    finally:
        server.stop()


def test_a_managed_cluster_store_refreshes_so_that_persisted_writes_are_searchable(loopback):
    store = store_at(loopback)
    store.upsert(["a"], unit_rows(1), ["h"])
    store.persist()
    assert store.count() == 1  # refreshed by persist, no waiting
    assert loopback.requests_to("POST", "/_refresh") or loopback.requests_to("GET", "/_refresh")


# -- several writers -----------------------------------------------------------------------------------


def test_two_writers_creating_the_index_at_once_both_land(loopback):
    first, second = store_at(loopback), store_at(loopback)
    first.upsert(["a"], unit_rows(1, seed=1), ["ha"])
    second.upsert(["b"], unit_rows(1, seed=2), ["hb"])
    first.check_model_version("m1")
    second.check_model_version("m1")
    first.persist()
    second.persist()  # its create fails with resource_already_exists_exception: it adopts the index
    assert len(loopback.requests_to("PUT", "/lookalike")) == 2
    assert store_at(loopback).content_hashes() == {"a": "ha", "b": "hb"}


def test_a_concurrent_writer_of_another_model_version_is_refused(loopback):
    first, second = store_at(loopback, dim=8), store_at(loopback, dim=8)
    first.check_model_version("m1")
    second.check_model_version("m2")
    first.persist()
    with pytest.raises(ModelVersionMismatchError, match="m1"):
        second.persist()


def test_scans_page_through_everything(loopback, monkeypatch):
    monkeypatch.setattr(opensearch_store, "SCAN_PAGE", 3)
    store = store_at(loopback)
    ids = [f"k/{i}" for i in range(10)]
    store.upsert(ids, unit_rows(10), [f"h{i % 2}" for i in range(10)])
    store.block([f"blocked-{i}" for i in range(7)])
    store.persist()
    reader = store_at(loopback)
    assert reader.content_hashes() == {i: f"h{n % 2}" for n, i in enumerate(ids)}
    assert reader.ids_with_hash("h1") == ids[1::2]
    assert reader.blocked() == {f"blocked-{i}" for i in range(7)}
    assert [image.id for image in reader.get(ids[::-1])] == ids[::-1]  # mget in chunks of 3
    assert len(loopback.requests_to("POST", "/lookalike/_mget")) == 4
    assert any("search_after" in request.json() for request in loopback.requests_to("POST", "/_search"))
