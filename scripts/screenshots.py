"""Screenshots of the web page's main states, for docs/WEB.md and the README.

Drives Debian's Chromium against the demo gallery (`make demo` builds and indexes it), the same
way the end-to-end tests do, and writes small palette PNGs:

    .venv/bin/python scripts/screenshots.py [--gallery demo-gallery] [--store .lookalike/demo-store]
"""

import argparse
import io
import sys
import tempfile
from pathlib import Path

from PIL import Image
from playwright.sync_api import sync_playwright

from lookalike.paths import default_model_path
from lookalike.embedding import Embedder
from lookalike.http.app import create_app
from lookalike.proposals import Proposer
from lookalike.search import SearchService
from lookalike.sources import FolderSource
from lookalike.stores.faiss import FaissStore

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the browser harness the end-to-end tests use
from tests.support.browser import launch_chromium, serving  # noqa: E402

# Two chairs against a wall; the box goes around the left one.
QUERY = "interiors/pexels-7303800.jpg"
CHAIR = (0.15, 0.40, 0.47, 1.0)
DESKTOP = {"width": 1200, "height": 800}
PHONE = {"width": 375, "height": 760}
VISIBLE_RESULTS_SHOWN = """() => Promise.all([...document.querySelectorAll(".card-button img")]
    .filter((image) => image.getBoundingClientRect().top < innerHeight)
    .map((image) => image.decode().catch(() => null)))"""
COLOURS = 256  # a palette PNG: a screenshot stays within a few hundred KB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gallery", type=Path, default=ROOT / "demo-gallery")
    parser.add_argument("--store", type=Path, default=ROOT / ".lookalike" / "demo-store")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    embedder = Embedder(default_model_path(), threads=2)
    proposer = Proposer(embedder) if embedder.has_activation_maps else None
    app = create_app(SearchService(embedder, FaissStore(args.store)), FolderSource(args.gallery), proposer=proposer)
    with tempfile.TemporaryDirectory() as empty_store:
        empty = create_app(SearchService(embedder, FaissStore(Path(empty_store))), FolderSource(args.gallery))
        with sync_playwright() as playwright, serving(app) as url, serving(empty) as empty_url:
            browser = launch_chromium(playwright)
            shoot_search_and_viewer(browser, url, args.gallery / QUERY, args.out)
            shoot_phone(browser, url, args.gallery / QUERY, args.out)
            shoot_states(browser, url, empty_url, args.out)
            browser.close()


def shoot_search_and_viewer(browser, url, query: Path, out: Path) -> None:
    page = open_page(browser, url, viewport=DESKTOP)
    search_fragment(page, query)
    save(page, out / "search.png")
    page.click(".card-button >> nth=0")
    page.wait_for_function("() => document.querySelector('#viewer-image').complete")
    save(page, out / "viewer.png")
    page.context.close()


def shoot_phone(browser, url, query: Path, out: Path) -> None:
    page = open_page(browser, url, viewport=PHONE, has_touch=True, is_mobile=True, device_scale_factor=1)
    search_fragment(page, query)
    save(page, out / "phone.png")
    page.context.close()


def shoot_states(browser, url, empty_url, out: Path) -> None:
    page = open_page(browser, url, viewport={"width": 900, "height": 420})
    page.set_input_files("#file-input", files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": b"milk\n" * 50}])
    page.wait_for_selector("#notice:not([hidden])")
    save(page, out / "not-an-image.png")
    page.context.close()
    page = open_page(browser, empty_url, viewport={"width": 900, "height": 420})
    save(page, out / "empty-gallery.png")
    page.context.close()


def open_page(browser, url, **context_options):
    page = browser.new_context(**context_options).new_page()
    page.goto(url)
    page.wait_for_function("() => document.querySelector('#gallery-size').textContent !== ''")
    return page


def search_fragment(page, query: Path) -> None:
    page.set_input_files("#file-input", str(query))
    page.wait_for_selector(".card-button")
    bounds = page.locator("#query-image").bounding_box()
    x0, y0, x1, y1 = CHAIR
    page.mouse.move(bounds["x"] + x0 * bounds["width"], bounds["y"] + y0 * bounds["height"])
    page.mouse.down()
    page.mouse.move(bounds["x"] + x1 * bounds["width"], bounds["y"] + y1 * bounds["height"] - 1, steps=10)
    page.mouse.up()
    page.wait_for_function("() => document.querySelector('#results').getAttribute('aria-busy') === 'false'")
    page.evaluate("document.activeElement.blur()")
    page.evaluate(VISIBLE_RESULTS_SHOWN)


def save(page, path: Path) -> None:
    image = Image.open(io.BytesIO(page.screenshot())).convert("RGB")
    image.quantize(COLOURS, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(path, optimize=True)
    print(f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}: {path.stat().st_size // 1024} KB")


if __name__ == "__main__":
    main()
