"""The search service end to end on real photos and the real model (no HTTP, no CLI)."""

import pytest
from PIL import Image

from lookalike.errors import ImageTooLargeError, InvalidParameterError, NotAnImageError
from lookalike.images import FULL_DECODE_PIXELS, CropBox
from lookalike.indexing import Indexer
from lookalike.ranking import RankingPolicy
from lookalike.search import Query, SearchService
from lookalike.sources import FolderSource
from lookalike.stores.base import ModelVersionMismatchError
from lookalike.stores.faiss import FaissStore
from tests.support.photos import encode, photo, png_header_only, write_gallery


@pytest.fixture
def gallery(tmp_path, embedder):
    files = write_gallery(tmp_path / "gallery")
    store = FaissStore(tmp_path / "store")
    Indexer(FolderSource(tmp_path / "gallery"), embedder, store).sync()
    return files, store


def ids(hits):
    return [hit.id for hit in hits]


def test_a_resaved_copy_finds_its_source_first(gallery, embedder):
    _, store = gallery
    copy = encode(photo("chelsea").resize((300, 200)), "PNG")
    hits = SearchService(embedder, store).search_one(Query(copy), k=3)
    assert hits[0].id == "cats/chelsea.JPEG"
    assert hits[0].score > 0.9
    assert hits[0].score > hits[1].score >= hits[2].score


def test_the_query_image_itself_is_not_returned(gallery, embedder):
    files, store = gallery
    hits = SearchService(embedder, store).search_one(Query(files["astronaut.jpg"].read_bytes()), k=10)
    assert "astronaut.jpg" not in ids(hits)
    assert len(hits) == 6


def test_crop_box_searches_the_fragment(gallery, embedder):
    _, store = gallery
    left, right = photo("coffee").resize((400, 300)), photo("rocket").resize((400, 300))
    collage = Image.new("RGB", (800, 300))
    collage.paste(left, (0, 0))
    collage.paste(right, (400, 0))
    service = SearchService(embedder, store)
    data = encode(collage, quality=95)
    assert service.search_one(Query(data, CropBox(0, 0, 400, 300)), k=1)[0].id == "coffee"
    assert service.search_one(Query(data, CropBox(400, 0, 800, 300)), k=1)[0].id == "rocket.webp"


def test_batch_size_does_not_change_rankings(gallery, embedder):
    files, store = gallery
    queries = [Query(encode(photo(name).rotate(angle), quality=80)) for name in ("chelsea", "coffee", "rocket", "astronaut") for angle in (0, 7)]
    one_by_one = SearchService(embedder, store, batch_size=1).search(queries, k=7)
    batched = SearchService(embedder, store, batch_size=8).search(queries, k=7)
    assert [r.hits for r in one_by_one] == [r.hits for r in batched]


def test_exactly_min_k_eligible_after_filters(tmp_path, embedder):
    root = tmp_path / "gallery"
    write_gallery(root)
    chelsea = photo("chelsea")
    for quality in (90, 95, 97):  # re-saves of one photo: near-duplicates of each other
        (root / f"chelsea-q{quality}.jpg").write_bytes(encode(chelsea, quality=quality))
    store = FaissStore(tmp_path / "store")
    Indexer(FolderSource(root), embedder, store).sync()
    store.block(["hubble.jpg"])
    store.persist()
    service = SearchService(embedder, store)
    query = Query((root / "chelsea-q97.jpg").read_bytes())
    hits = service.search_one(query, k=3)
    assert len(hits) == 3
    assert "chelsea-q97.jpg" not in ids(hits) and "hubble.jpg" not in ids(hits)
    chelsea_group = {"cats/chelsea.JPEG", "chelsea-q90.jpg", "chelsea-q95.jpg"}
    assert len(chelsea_group & set(ids(hits))) == 1, "near-duplicates collapse to one"
    # 10 images - the query - one blocked - two collapsed duplicates = 6 eligible
    assert len(service.search_one(query, k=50)) == 6
    undeduped = service.search_one(query, k=50, dedupe=False)
    assert len(undeduped) == 8 and chelsea_group <= set(ids(undeduped))


def test_tag_filter_only_filters(tmp_path, embedder):
    root = tmp_path / "gallery"
    write_gallery(root)
    (root / ".tags.json").write_text('{"*": {"kind": "photo"}, "coffee": {"kind": "drink"}}')
    store = FaissStore(tmp_path / "store")
    Indexer(FolderSource(root), embedder, store).sync()
    service = SearchService(embedder, store)
    query = Query(encode(photo("coffee"), quality=85))
    assert ids(service.search_one(query, k=5, tags={"kind": "drink"})) == ["coffee"]
    unfiltered = service.search_one(query, k=3)
    filtered = service.search_one(query, k=3, tags={"kind": "photo"}, dedupe=False)
    assert unfiltered[0].id == "coffee" and "coffee" not in ids(filtered) and len(filtered) == 3
    untagged = {"cats/chelsea.JPEG", "nested/deeper/motorcycle.png"}  # "*" covers its own folder only
    assert not untagged & set(ids(filtered))
    expected = [hit for hit in service.search_one(query, k=7, dedupe=False) if hit.id not in untagged | {"coffee"}]
    assert ids(filtered) == ids(expected)[:3]


def test_a_bad_query_fails_alone(gallery, embedder):
    _, store = gallery
    good = Query(encode(photo("rocket"), quality=85))
    results = SearchService(embedder, store).search([good, Query(b"not an image"), good], k=2)
    assert isinstance(results[1].error, NotAnImageError) and results[1].hits == []
    assert results[0].error is None and results[0].hits == results[2].hits and results[0].hits[0].id == "rocket.webp"


@pytest.mark.parametrize("k", [0, -1, 100_000])
def test_k_out_of_range_is_refused(gallery, embedder, k):
    _, store = gallery
    with pytest.raises(InvalidParameterError):
        SearchService(embedder, store).search([Query(b"")], k=k)


def test_policy_threshold_none_keeps_duplicates(gallery, embedder):
    _, store = gallery
    service = SearchService(embedder, store, RankingPolicy(dedupe_threshold=None))
    assert len(service.search_one(Query(encode(photo("retina"))), k=7)) == 7


def test_a_store_of_another_model_is_refused_before_any_query(tmp_path, embedder):
    with FaissStore(tmp_path / "store", model_version="another-model") as store:
        store.persist()
        with pytest.raises(ModelVersionMismatchError, match="another-model"):
            SearchService(embedder, store)


def test_a_query_over_the_full_decode_budget_is_refused_before_decoding(gallery, embedder):
    _, store = gallery
    tall = Query(png_header_only(8, 6_000_000))  # 48 MP: under the pixel limit, over the budget
    with pytest.raises(ImageTooLargeError, match=f"up to {FULL_DECODE_PIXELS:,} pixels"):
        SearchService(embedder, store).search_one(tall)
