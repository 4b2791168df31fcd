"""Retrieval quality on real photos: half-area crops of 500 Tiny ImageNet validation images."""

import pytest

from lab.datasets import half_area_crop_queries, tiny_imagenet_val
from lookalike.indexing import Indexer
from lookalike.search import Query, SearchService
from lookalike.sources import FolderSource
from lookalike.stores.faiss import FaissStore


GALLERY_SIZE = 500
REQUIRED_RANK1 = 0.95


@pytest.mark.slow
def test_half_area_crops_find_their_source_at_rank_one(tmp_path, embedder, tiny_imagenet_val_tar):
    images = list(tiny_imagenet_val(tiny_imagenet_val_tar, GALLERY_SIZE))
    gallery = tmp_path / "gallery"
    gallery.mkdir()
    for image in images:
        (gallery / image.name).write_bytes(image.data)
    store = FaissStore(tmp_path / "store")
    report = Indexer(FolderSource(gallery), embedder, store).sync()
    assert len(report.indexed) == GALLERY_SIZE and not report.failed

    queries = [Query(data) for data in half_area_crop_queries(images)]
    results = SearchService(embedder, store).search(queries, k=1)
    hits = sum(result.hits[0].id == image.name for image, result in zip(images, results))
    rank1 = hits / GALLERY_SIZE
    print(f"half-area crop retrieval: rank-1 {rank1:.1%} ({hits}/{GALLERY_SIZE})")
    assert rank1 >= REQUIRED_RANK1
