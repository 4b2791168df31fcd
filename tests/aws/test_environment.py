"""The services a function builds from its environment variables: each from the settings it needs
alone, a missing one named when that service is first built, each built once per container."""

from urllib.parse import parse_qs, urlsplit

import pytest

from lookalike.aws import environment
from lookalike.aws.environment import CloudEnvironment, MissingSettingError
from lookalike.knn import KnnMethod
from lookalike.stores.opensearch import DEFAULT_INDEX
from tests.support.lambda_harness import EVENTS_TABLE, GALLERY_BUCKET, IDEMPOTENCY_TABLE, QUERY_BUCKET, REGION

SETTINGS = {
    "GALLERY_BUCKET": GALLERY_BUCKET,
    "QUERY_BUCKET": QUERY_BUCKET,
    "EVENTS_TABLE": EVENTS_TABLE,
    "IDEMPOTENCY_TABLE": IDEMPOTENCY_TABLE,
    "INDEX_QUEUE_URL": f"https://sqs.{REGION}.amazonaws.com/123456789012/lookalike-index",
    "OPENSEARCH_ENDPOINT": "http://127.0.0.1:9",
}
OPTIONAL = ["OPENSEARCH_INDEX", "OPENSEARCH_SERVICE", "KNN_M", "KNN_EF_CONSTRUCTION", "KNN_EF_SEARCH"]


@pytest.fixture
def settings(cloud, monkeypatch) -> dict[str, str]:
    """Every setting the tests give, none from the machine running them; set them with `monkeypatch`."""
    for name in [*SETTINGS, *OPTIONAL]:
        monkeypatch.delenv(name, raising=False)
    return dict(SETTINGS)


def given(monkeypatch, settings: dict[str, str]) -> CloudEnvironment:
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    return CloudEnvironment()


@pytest.mark.parametrize(
    ("service", "missing"),
    [
        ("gallery", "GALLERY_BUCKET"),
        ("uploads", "QUERY_BUCKET"),
        ("events", "EVENTS_TABLE"),
        ("idempotency_store", "IDEMPOTENCY_TABLE"),
        ("store", "OPENSEARCH_ENDPOINT"),
        ("backfill", "GALLERY_BUCKET"),
        ("backfill", "INDEX_QUEUE_URL"),
    ],
)
@pytest.mark.parametrize("unset", [True, False], ids=["unset", "empty"])
def test_a_service_names_the_setting_it_misses(settings, monkeypatch, service, missing, unset):
    del settings[missing]
    env = given(monkeypatch, settings if unset else {**settings, missing: ""})
    with pytest.raises(MissingSettingError, match=f"the environment variable {missing} is not set"):
        getattr(env, service)


def test_a_service_needs_only_its_own_settings(settings, monkeypatch):
    env = given(monkeypatch, {"GALLERY_BUCKET": GALLERY_BUCKET})
    assert env.gallery.bucket == GALLERY_BUCKET
    assert "embedder" not in vars(env), "building the gallery loaded the model"


def test_services_come_from_the_settings_and_are_built_once(settings, monkeypatch):
    env = given(monkeypatch, settings)
    assert (env.gallery.bucket, env.uploads.bucket, env.events.table.name) == (
        GALLERY_BUCKET,
        QUERY_BUCKET,
        EVENTS_TABLE,
    )
    assert (env.backfill.bucket, env.backfill.queue_url) == (GALLERY_BUCKET, settings["INDEX_QUEUE_URL"])
    assert env.gallery is env.gallery and env.uploads.client is env.gallery.client is env.s3
    environment.current.cache_clear()
    try:
        assert environment.current() is environment.current(), "a container would build its services per request"
    finally:
        environment.current.cache_clear()


def test_the_store_takes_the_index_and_the_knn_settings(settings, monkeypatch, loopback):
    tuned = {"OPENSEARCH_INDEX": "gallery-v2", "KNN_M": "24", "KNN_EF_CONSTRUCTION": "200", "KNN_EF_SEARCH": "50"}
    store = given(monkeypatch, {**settings, "OPENSEARCH_ENDPOINT": loopback.url, **tuned}).store
    assert (store.index, store.method) == (
        "gallery-v2",
        KnnMethod(name="hnsw", m=24, ef_construction=200, ef_search=50),
    )
    for name in tuned:
        monkeypatch.delenv(name)
    default = CloudEnvironment().store
    assert (default.index, default.method) == (DEFAULT_INDEX, KnnMethod(name="hnsw"))


def test_presigned_urls_are_signed_for_the_regional_endpoint(settings, monkeypatch):
    url = given(monkeypatch, settings).gallery.url("kitchen/lamp 1.jpg")
    location = urlsplit(url)
    assert location.netloc == f"{GALLERY_BUCKET}.s3.{REGION}.amazonaws.com"
    assert parse_qs(location.query)["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
