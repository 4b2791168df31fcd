"""The loopback server against OpenSearch's documented behaviour: worked score values, error
bodies, and what a stand-in for OpenSearch must do, all through the real opensearch-py.

If the fake drifted from OpenSearch, every store test built on it would prove the wrong thing;
these pin the fake itself. Each section names the OpenSearch documentation page it follows.
"""

import pytest
from opensearchpy import NotFoundError, OpenSearch, RequestError, helpers

from tests.support.opensearch_loopback import LoopbackOpenSearch


def client_for(server: LoopbackOpenSearch) -> OpenSearch:
    host, port = server.url.removeprefix("http://").split(":")
    return OpenSearch(hosts=[{"host": host, "port": int(port)}], use_ssl=False)


def vector_index(client: OpenSearch, name: str, dim: int, space: str, settings: dict | None = None) -> None:
    field = {"type": "knn_vector", "dimension": dim, "method": {"name": "hnsw", "engine": "faiss", "space_type": space}}
    body = {
        "settings": settings or {"index": {"knn": True}},
        "mappings": {"properties": {"v": field, "colour": {"type": "keyword"}}},
    }
    client.indices.create(index=name, body=body)


def index_docs(client: OpenSearch, name: str, docs: dict[str, dict], refresh: bool = True) -> None:
    actions = [{"_index": name, "_id": doc_id, "_source": source} for doc_id, source in docs.items()]
    helpers.bulk(client, actions, refresh=refresh)


def knn(client: OpenSearch, name: str, vector, **clause) -> list[tuple[str, float]]:
    size = clause.pop("size", 10)
    body = {"size": size, "query": {"knn": {"v": {"vector": vector, **clause}}}}
    return [(hit["_id"], hit["_score"]) for hit in client.search(index=name, body=body)["hits"]["hits"]]


# -- scores (OpenSearch docs, "Spaces") -------------------------------------------------------------


def test_l2_radial_search_reproduces_the_documented_example(loopback):
    """OpenSearch docs, "Radial search": its l2 example, hit for hit and score for score."""
    client = client_for(loopback)
    vector_index(client, "l2", 2, "l2")
    points = {"1": [7.0, 8.2], "2": [7.3, 8.3], "3": [6.5, 8.8], "4": [7.1, 7.4], "5": [5.7, 7.9]}
    index_docs(client, "l2", {doc_id: {"v": point} for doc_id, point in points.items()})
    hits = knn(client, "l2", [7.1, 8.3], max_distance=2)
    assert hits == [("1", 0.98039204), ("2", 0.9615384), ("3", 0.62111807), ("4", 0.5524861)]


@pytest.mark.parametrize(
    ("space", "query", "doc", "score"),
    [
        ("innerproduct", [1, 2], [3, 4], 12.0),
        ("innerproduct", [1, 2], [-1, -1], 0.25),
        ("cosinesimil", [1, 0], [0, 1], 0.5),
        ("cosinesimil", [1, 0], [-2, 0], 0.0),
        ("l2", [7.1, 8.3], [7.0, 8.2], 0.98039204),
    ],
)
def test_scores_are_the_documented_worked_values(loopback, space, query, doc, score):
    client = client_for(loopback)
    vector_index(client, "scores", 2, space)
    index_docs(client, "scores", {"d": {"v": doc}})
    assert knn(client, "scores", query, k=1) == [("d", score)]


# -- k, size and filters (OpenSearch docs, "Approximate k-NN search", "Efficient k-NN filtering") ------


def test_hits_are_min_of_k_size_and_matches(loopback):
    client = client_for(loopback)
    vector_index(client, "many", 2, "innerproduct")
    index_docs(client, "many", {str(i): {"v": [1.0, i / 30]} for i in range(30)})
    assert len(knn(client, "many", [1, 0], k=5, size=2)) == 2
    assert len(knn(client, "many", [1, 0], k=20)) == 10  # size defaults to 10
    assert len(knn(client, "many", [1, 0], k=25, size=25)) == 25
    with pytest.raises(RequestError, match=r"requires k <= 10000"):
        knn(client, "many", [1, 0], k=10_001, size=1)
    with pytest.raises(RequestError, match=r"requires k > 0"):
        knn(client, "many", [1, 0], k=0)


def test_a_filter_inside_knn_returns_k_but_a_post_filter_may_not(loopback):
    client = client_for(loopback)
    vector_index(client, "filters", 2, "innerproduct")
    docs = {str(i): {"v": [1.0, 0.0], "colour": "blue"} for i in range(20)}
    docs.update({f"red{i}": {"v": [-1.0, 0.1 * i], "colour": "red"} for i in range(3)})  # far from the query
    index_docs(client, "filters", docs)
    red = {"term": {"colour": "red"}}
    inside = knn(client, "filters", [1, 0], k=3, filter=red)
    assert sorted(doc_id for doc_id, _ in inside) == ["red0", "red1", "red2"]
    post = {"size": 3, "query": {"bool": {"must": [{"knn": {"v": {"vector": [1, 0], "k": 3}}}], "filter": [red]}}}
    assert client.search(index="filters", body=post)["hits"]["hits"] == []


# -- documents, refresh and errors (OpenSearch docs, "Bulk", "Get document", "Delete document") -------


def test_get_is_real_time_while_search_waits_for_a_refresh(loopback):
    client = client_for(loopback)
    vector_index(client, "nrt", 2, "innerproduct")
    index_docs(client, "nrt", {"a": {"v": [1, 0]}}, refresh=False)
    assert client.get(index="nrt", id="a")["found"] is True
    assert client.count(index="nrt")["count"] == 0
    client.indices.refresh(index="nrt")
    assert client.count(index="nrt")["count"] == 1
    with pytest.raises(NotFoundError):
        client.get(index="nrt", id="missing")


def test_bulk_items_report_their_own_status(loopback):
    client = client_for(loopback)
    vector_index(client, "bulk", 3, "innerproduct")
    body = [
        {"index": {"_index": "bulk", "_id": "ok"}},
        {"v": [1, 2, 3]},
        {"index": {"_index": "bulk", "_id": "short"}},
        {"v": [1, 2]},
        {"delete": {"_index": "bulk", "_id": "never"}},
        {"index": {"_index": "bulk", "_id": "ok"}},
        {"v": [3, 2, 1]},
    ]
    items = client.bulk(body=body)["items"]
    assert [(op, item["status"]) for entry in items for op, item in entry.items()] == [
        ("index", 201),
        ("index", 400),
        ("delete", 404),
        ("index", 200),
    ]
    failure = items[1]["index"]["error"]
    assert failure["type"] == "mapper_parsing_exception"
    assert failure["caused_by"]["reason"] == "Vector dimension mismatch. Expected: 3, Given: 2"
    assert items[2]["delete"]["result"] == "not_found" and "error" not in items[2]["delete"]
    assert items[3]["index"]["result"] == "updated" and items[3]["index"]["_version"] == 2


def test_a_bulk_body_must_end_with_a_newline(loopback):
    client = client_for(loopback)
    vector_index(client, "nl", 2, "innerproduct")
    raw = '{"index":{"_index":"nl","_id":"a"}}\n{"v":[1,0]}'
    with pytest.raises(RequestError, match="terminated by a newline"):
        client.transport.perform_request("POST", "/_bulk", body=raw)


def test_error_bodies_carry_their_type(loopback):
    """opensearch-py reads error.type only from an application/json response."""
    client = client_for(loopback)
    vector_index(client, "errors", 3, "innerproduct")
    with pytest.raises(RequestError) as exists:
        vector_index(client, "errors", 3, "innerproduct")
    assert exists.value.error == "resource_already_exists_exception"
    assert exists.value.info["error"]["reason"].startswith("index [errors/")
    with pytest.raises(NotFoundError) as missing:
        client.search(index="nowhere", body={})
    assert missing.value.error == "index_not_found_exception"
    with pytest.raises(RequestError) as wrong_dimension:
        knn(client, "errors", [1, 2], k=1)
    assert wrong_dimension.value.error == "search_phase_execution_exception"
    assert (
        "Query vector has invalid dimension: 2. Dimension should be: 3"
        in wrong_dimension.value.info["error"]["root_cause"][0]["reason"]
    )


@pytest.mark.parametrize(
    ("field", "settings", "message"),
    [
        (
            {"type": "knn_vector", "dimension": 4, "method": {"name": "ivf", "engine": "faiss"}},
            None,
            '"method" requires training.',
        ),
        (
            {
                "type": "knn_vector",
                "dimension": 4,
                "method": {"name": "hnsw", "parameters": {"encoder": {"name": "pq"}}},
            },
            None,
            '"method" requires training.',
        ),
        ({"type": "knn_vector", "method": {"name": "hnsw"}}, None, "Dimension value missing for vector: v"),
        (
            {"type": "knn_vector", "dimension": 4, "method": {"name": "hnsw"}},
            {"index.knn": False},
            "index.knn setting is false",
        ),
    ],
)
def test_mappings_the_k_nn_plugin_refuses(loopback, field, settings, message):
    client = client_for(loopback)
    body = {"settings": settings or {"index.knn": True}, "mappings": {"properties": {"v": field}}}
    with pytest.raises(RequestError, match=message):
        client.indices.create(index="refused", body=body)


@pytest.mark.parametrize("settings", [{"index": {"knn": True}}, {"index.knn": True}, {"index": {"knn": "true"}}])
def test_both_settings_forms_turn_knn_on(loopback, settings):
    client = client_for(loopback)
    vector_index(client, "forms", 2, "innerproduct", settings=settings)
    assert loopback.indexes["forms"].settings["index.knn"] in (True, "true")


# -- Serverless (AWS, "Working with vector search collections") ----------------------------------------


def test_serverless_refuses_refreshes_and_refreshes_on_its_own():
    server = LoopbackOpenSearch(serverless=True).start()
    try:
        client = client_for(server)
        vector_index(client, "aoss", 2, "innerproduct")
        with pytest.raises(RequestError, match="refresh policy is not supported"):
            index_docs(client, "aoss", {"a": {"v": [1, 0]}}, refresh=True)
        with pytest.raises(NotFoundError) as refresh:
            client.indices.refresh(index="aoss")
        assert refresh.value.error == "resource_not_found_exception"
        index_docs(client, "aoss", {"a": {"v": [1, 0]}}, refresh=False)
        assert client.count(index="aoss")["count"] == 0
        server.publish()
        assert client.count(index="aoss")["count"] == 1
    finally:
        server.stop()


def test_a_classic_vector_collection_refuses_custom_ids():
    server = LoopbackOpenSearch(serverless=True, custom_ids=False).start()
    try:
        client = client_for(server)
        vector_index(client, "classic", 2, "innerproduct")
        (item,) = client.bulk(body=[{"index": {"_index": "classic", "_id": "a"}}, {"v": [1, 0]}])["items"]
        assert item["index"]["status"] == 400
        assert item["index"]["error"]["reason"] == "Document ID is not supported in create/index operation request"
        (item,) = client.bulk(body=[{"index": {"_index": "classic"}}, {"v": [1, 0]}])["items"]
        assert item["index"]["status"] == 201  # server-generated ids are fine
    finally:
        server.stop()
