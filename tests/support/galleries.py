"""A small indexed gallery of real photos, and queries whose right answers are known."""

import json
from pathlib import Path

from PIL import Image
from skimage import data

from lookalike.indexing import Indexer
from lookalike.search import SearchService
from lookalike.sources import FolderSource
from lookalike.stores.faiss import FaissStore
from tests.support.photos import encode, photo, write_gallery

LAMP = "kitchen/lamp 1.jpg"  # a folder and a space: the id must be percent-encoded in URLs
LAMP_URL = "/images/kitchen%2Flamp%201.jpg"


def index_gallery(root: Path, store_path: Path, embedder) -> tuple[SearchService, FolderSource, dict[str, Path]]:
    """write_gallery's photos plus LAMP (tagged room=kitchen), indexed; a file sits beside the root."""
    files = write_gallery(root)
    files[LAMP] = root / LAMP
    files[LAMP].parent.mkdir()
    files[LAMP].write_bytes(encode(Image.fromarray(data.immunohistochemistry()), quality=90))
    (root / "kitchen" / ".tags.json").write_text(json.dumps({"*": {"room": "kitchen"}}))
    (root.parent / "secret.txt").write_text("outside the gallery")
    source = FolderSource(root)
    store = FaissStore(store_path)
    Indexer(source, embedder, store).sync()
    return SearchService(embedder, store), source, files


def chelsea_copy() -> bytes:
    """A resized, re-encoded copy of cats/chelsea.JPEG: the gallery's original must come first."""
    return encode(photo("chelsea").resize((300, 200)), "PNG")


def collage() -> bytes:
    """coffee on the left half, rocket on the right: a box picks one of them."""
    image = Image.new("RGB", (800, 300))
    image.paste(photo("coffee").resize((400, 300)), (0, 0))
    image.paste(photo("rocket").resize((400, 300)), (400, 0))
    return encode(image, quality=95)
