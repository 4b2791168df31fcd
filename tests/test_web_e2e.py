"""The web page in a real browser: Playwright driving Debian's Chromium against the real local
server, the real model and a real gallery of photos.

Each test runs in a fresh browser context and fails if the page logged an error to the console
or threw; a test that provokes a failed request on purpose names the one console line that
request may leave (the browser itself logs every refused request, whatever the page does).
"""

import base64
import hashlib
import io
import json
import re
import shutil
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
from PIL import Image

from tests.support.browser import CHROMIUM, launch_chromium, serving
from lookalike.interactions.sqlite_log import SqliteEventLog
from lookalike.http.admission import MAX_REQUEST_BYTES
from lookalike.http.app import create_app
from lookalike.proposals import Proposer
from lookalike.search import SearchService
from lookalike.stores.faiss import FaissStore
from tests.support.photos import encode, photo
from tests.support.galleries import chelsea_copy, collage, index_gallery

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)")
sync_api = pytest.importorskip("playwright.sync_api")

DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 375, "height": 740}
COLLAGE_SIZE = (800, 300)  # collage(): coffee on the left half, rocket on the right


@pytest.fixture(scope="module")
def gallery(tmp_path_factory, embedder):
    root = tmp_path_factory.mktemp("web")
    return index_gallery(root / "gallery", root / "store", embedder)


class RecordingApp:
    """The app, keeping every search request it resolves: the browser does not expose a
    multipart body that holds a file, so the box sent is read where it arrives."""

    def __init__(self, app):
        self.app = app
        self.searches: list[dict] = []

    def resolve(self, event, context):
        if event["requestContext"]["http"]["path"] == "/search":
            self.searches.append(event)
        return self.app.resolve(event, context)

    def last_body(self) -> bytes:
        event = self.searches[-1]
        return base64.b64decode(event["body"]) if event["isBase64Encoded"] else event["body"].encode()

    def last_box(self) -> list[int] | None:
        if self.searches[-1]["headers"]["content-type"].startswith("application/json"):
            return json.loads(self.last_body()).get("box")
        match = re.search(rb'name="box"\r\n\r\n([0-9,]+)\r\n', self.last_body())
        return [int(part) for part in match.group(1).split(b",")] if match else None

    def last_image(self) -> Image.Image:
        """The image part of the last multipart search, as the server received it."""
        part = re.search(rb'name="image"; filename="[^"]*"\r\nContent-Type: [^\r]*\r\n\r\n', self.last_body())
        return Image.open(io.BytesIO(self.last_body()[part.end():]))


@pytest.fixture(scope="module")
def event_log(tmp_path_factory):
    log = SqliteEventLog(tmp_path_factory.mktemp("events") / "events.sqlite")
    yield log
    log.close()


@pytest.fixture(scope="module")
def recorder(gallery, event_log):
    """The whole app, as `lookalike serve` builds it: suggested fragments and the event log too."""
    service, source, _ = gallery
    return RecordingApp(create_app(service, source, proposer=Proposer(service.embedder), events=event_log))


@pytest.fixture(scope="module")
def url(recorder):
    with serving(recorder) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        yield browser
        browser.close()


class Console:
    """Errors the page logged or threw; `allow` names console lines a test provokes on purpose."""

    def __init__(self, page):
        self.errors: list[str] = []
        self.allowed: list[re.Pattern] = []
        page.on("console", lambda message: message.type == "error" and self.errors.append(message.text))
        page.on("pageerror", lambda error: self.errors.append(f"uncaught: {error}"))

    def allow(self, pattern: str) -> None:
        self.allowed.append(re.compile(pattern))

    def unexpected(self) -> list[str]:
        return [error for error in self.errors if not any(allowed.search(error) for allowed in self.allowed)]


@contextmanager
def browsing(browser, url, **context_options):
    """The page, loaded in a fresh browser context; by the end it must have logged no error."""
    context = browser.new_context(**context_options)
    try:
        page = context.new_page()
        page.set_default_timeout(20_000)
        console = Console(page)
        page.goto(url)
        page.wait_for_function("() => document.querySelector('#gallery-size').textContent !== ''")
        yield page, console
    finally:
        context.close()
    assert console.unexpected() == [], "the page logged errors"


@pytest.fixture
def page_and_console(browser, url):
    with browsing(browser, url, viewport=DESKTOP) as page_and_console:
        yield page_and_console


@pytest.fixture
def page(page_and_console):
    return page_and_console[0]


def upload(page, name: str, data: bytes, mime: str = "image/jpeg") -> None:
    page.set_input_files("#file-input", files=[{"name": name, "mimeType": mime, "buffer": data}])


def result_ids(page) -> list[str]:
    return page.eval_on_selector_all(".card-button", "cards => cards.map(card => card.dataset.id)")


def wait_for_first_result(page, image_id: str) -> None:
    page.wait_for_function(
        "id => document.querySelector('.card-button')?.dataset.id === id && "
        "document.querySelector('#results').getAttribute('aria-busy') === 'false'",
        arg=image_id,
    )


def settled(page) -> None:
    """No search in flight (wait_for_function takes functions: the page's CSP forbids eval)."""
    page.wait_for_function("() => document.querySelector('#results').getAttribute('aria-busy') === 'false'")


def is_search(request) -> bool:
    return request.method == "POST" and request.url.endswith("/search")


def image_point(page, fx: float, fy: float) -> tuple[float, float]:
    """A point of the query image as fractions of its displayed size, in page coordinates."""
    bounds = page.locator("#query-image").bounding_box()
    return bounds["x"] + fx * bounds["width"], bounds["y"] + fy * bounds["height"]


def drag(page, start: tuple[float, float], end: tuple[float, float]) -> None:
    page.mouse.move(*image_point(page, *start))
    page.mouse.down()
    page.mouse.move(*image_point(page, *end), steps=8)
    page.mouse.up()


def test_upload_shows_ranked_results_with_their_similarity(page):
    upload(page, "chelsea.png", chelsea_copy(), "image/png")
    wait_for_first_result(page, "cats/chelsea.JPEG")
    scores = [float(text.split()[-1]) for text in page.locator(".score").all_inner_texts()]
    assert len(scores) == 8
    assert scores == sorted(scores, reverse=True)
    assert page.inner_text("#status") == "8 results for the whole image, most alike first."
    assert page.get_attribute(".card-button img >> nth=0", "alt") == "chelsea, in cats"
    assert page.is_visible("#query-image") and page.is_hidden("#dropzone")


def box_searched(page, recorder, action) -> list[int] | None:
    """Runs `action` (a released drag or a chosen suggestion: both search at once) and returns
    the box of the last search it set off (a drag slower than the debounce delay may set off
    others on the way, which the last one supersedes)."""
    settled(page)
    searches = len(recorder.searches)
    action()
    settled(page)
    assert len(recorder.searches) > searches, "no search was sent"
    return recorder.last_box()


DROP_OR_PASTE = """([kind, base64]) => {
    const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
    const transfer = new DataTransfer();
    transfer.items.add(new File([bytes], "query.png", { type: "image/png" }));
    const event = kind === "paste"
        ? new ClipboardEvent("paste", { clipboardData: transfer, bubbles: true })
        : new DragEvent("drop", { dataTransfer: transfer, bubbles: true, cancelable: true });
    document.body.dispatchEvent(event);
}"""


@pytest.mark.parametrize("kind", ["drop", "paste"])
def test_an_image_can_be_dropped_or_pasted(page, kind):
    page.evaluate(DROP_OR_PASTE, [kind, base64.b64encode(chelsea_copy()).decode()])
    wait_for_first_result(page, "cats/chelsea.JPEG")


def test_a_large_photo_is_scaled_down_before_it_is_sent(page, recorder):
    large = Image.open(io.BytesIO(collage())).resize((3200, 1200))  # 4 x 800 x 300
    upload(page, "large.png", encode(large, "PNG"), "image/png")
    page.wait_for_selector(".card-button")
    assert recorder.last_image().size == (1600, 600)
    assert "scaled down to 1600 × 600 pixels" in page.inner_text("#query-label")
    x0, y0, x1, y1 = box_searched(page, recorder, lambda: drag(page, (0.05, 0.05), (0.45, 0.95)))
    assert abs(x0 - 80) <= 8 and abs(y0 - 30) <= 8 and abs(x1 - 720) <= 8 and abs(y1 - 570) <= 8  # of 1600 x 600
    wait_for_first_result(page, "coffee")


def test_drawing_and_moving_the_box_changes_the_results(page, recorder):
    upload(page, "collage.jpg", collage())
    page.wait_for_selector(".card-button")
    x0, y0, x1, y1 = box_searched(page, recorder, lambda: drag(page, (0.05, 0.05), (0.45, 0.95)))
    wait_for_first_result(page, "coffee")
    # The box is sent in the pixels of the image, not of the page: 800 x 300 here.
    assert abs(x0 - 40) <= 4 and abs(y0 - 15) <= 4 and abs(x1 - 360) <= 4 and abs(y1 - 285) <= 4
    assert page.inner_text("#box-position") == (
        f"Searching the box from {x0}, {y0} to {x1}, {y1} ({x1 - x0} × {y1 - y0} pixels)."
    )

    # Grab the box by its middle and move it onto the rocket.
    moved = box_searched(page, recorder, lambda: drag(page, (0.25, 0.5), (0.75, 0.5)))
    wait_for_first_result(page, "rocket.webp")
    assert moved[2] - moved[0] == x1 - x0 and moved[0] >= 400

    assert box_searched(page, recorder, lambda: page.click("#reset-box")) is None
    assert page.inner_text("#box-position") == "Searching the whole image."
    assert page.evaluate("document.activeElement.id") == "box"


def test_resizing_with_a_corner_handle(page, recorder):
    upload(page, "collage.jpg", collage())
    page.wait_for_selector(".card-button")
    drag(page, (0.1, 0.1), (0.3, 0.5))
    before = page.locator("#box").bounding_box()
    handle = page.locator('.handle[data-handle="se"]').bounding_box()

    def pull_the_corner():
        page.mouse.move(handle["x"] + handle["width"] / 2, handle["y"] + handle["height"] / 2)
        page.mouse.down()
        page.mouse.move(*image_point(page, 0.45, 0.9), steps=8)
        page.mouse.up()

    x0, y0, x1, y1 = box_searched(page, recorder, pull_the_corner)
    after = page.locator("#box").bounding_box()
    assert (after["x"], after["y"]) == pytest.approx((before["x"], before["y"]), abs=1)
    assert after["width"] > before["width"] * 1.5 and after["height"] > before["height"] * 1.5
    assert abs(x0 - 80) <= 4 and abs(y0 - 30) <= 4 and abs(x1 - 360) <= 4 and abs(y1 - 270) <= 4


def wait_for_search_of(page, recorder, box: list[int]) -> None:
    """Until the page has searched this box and shown what came back (key presses may set off
    searches on the way, whenever they are more than the debounce delay apart)."""
    deadline = time.monotonic() + 20
    while not (recorder.searches and recorder.last_box() == box):
        assert time.monotonic() < deadline, f"no search for the box {box}"
        page.wait_for_timeout(50)
    settled(page)


def test_the_keyboard_resizes_and_moves_the_box(page, recorder):
    upload(page, "collage.jpg", collage())
    page.wait_for_selector(".card-button")
    page.focus("#box")
    for _ in range(25):  # Shift+Left: the right edge moves left, 2 % a press, to the middle
        page.keyboard.press("Shift+ArrowLeft")
    assert page.evaluate("getComputedStyle(document.activeElement).outlineColor") == "rgb(255, 211, 61)"  # visible
    wait_for_search_of(page, recorder, [0, 0, 400, 300])
    assert result_ids(page)[0] == "coffee"
    for _ in range(30):  # past the edge: the box stops at it
        page.keyboard.press("ArrowRight")
    wait_for_search_of(page, recorder, [400, 0, 800, 300])
    assert result_ids(page)[0] == "rocket.webp"


def test_choosing_a_suggested_fragment_searches_it(page, recorder):
    with page.expect_response(lambda response: response.url.endswith("/proposals")) as answered:
        upload(page, "collage.jpg", collage())
    proposals = answered.value.json()
    assert (proposals["width"], proposals["height"]) == COLLAGE_SIZE
    dots = page.locator(".suggestion")
    dots.first.wait_for()
    assert dots.count() == len(proposals["proposals"]) >= 1
    for index in range(dots.count()):
        chosen = box_searched(page, recorder, dots.nth(index).click)
        suggested = proposals["proposals"][index]["box"]
        if suggested == [0, 0, *COLLAGE_SIZE]:
            assert chosen is None  # the whole image: searched as such
        else:
            assert chosen == pytest.approx(suggested, abs=1)
        assert dots.nth(index).get_attribute("aria-pressed") == "true"
    assert page.is_enabled("#reset-box")


def test_a_result_opens_large_and_more_like_this_searches_it(page):
    upload(page, "chelsea.png", chelsea_copy(), "image/png")
    wait_for_first_result(page, "cats/chelsea.JPEG")
    page.click(".card-button >> nth=0")
    dialog = page.locator("#viewer")
    assert dialog.is_visible()
    assert page.inner_text("#viewer-title") == "chelsea, in cats"
    assert page.evaluate("document.activeElement.id") == "viewer-more"
    page.keyboard.press("Escape")
    assert dialog.is_hidden()
    assert page.evaluate("document.activeElement.dataset.id") == "cats/chelsea.JPEG"  # focus came back

    page.click(".card-button >> nth=1")
    second = page.get_attribute(".card-button >> nth=1", "data-id")
    with page.expect_request(is_search) as more:
        page.click("#viewer-more")
    assert more.value.post_data_json == {"image_id": second, "k": 24}
    settled(page)
    page.wait_for_selector(".card-button")
    assert dialog.is_hidden()
    assert page.inner_text("#query-label").startswith("More like: ")
    assert page.get_attribute("#query-image", "src").startswith("/images/")
    assert second not in result_ids(page)  # the query itself is left out
    assert page.evaluate("document.activeElement.id") == "box"


def test_a_box_on_a_gallery_image_is_sent_in_its_pixels(page, recorder):
    upload(page, "chelsea.png", chelsea_copy(), "image/png")
    page.wait_for_selector(".card-button")
    page.click('.card-button[data-id="coffee"]')
    page.click("#viewer-more")
    page.wait_for_function("() => document.querySelector('#query-image').naturalWidth > 0")
    settled(page)
    # From the middle to past the top-left corner: the box stops at the image's edges.
    boxed = box_searched(page, recorder, lambda: drag(page, (0.5, 0.5), (-0.2, -0.2)))
    width, height = photo("coffee").size  # the gallery's original, larger than it is shown here
    assert page.locator("#query-image").bounding_box()["width"] < width
    assert boxed == pytest.approx([0, 0, width // 2, height // 2], abs=1)
    assert recorder.searches[-1]["headers"]["content-type"] == "application/json"


def logged(event_log, query_id: str, until) -> list:
    """The events the log holds for one search, once `until(events)` holds (a beacon may lag)."""
    deadline = time.monotonic() + 20
    while True:
        events = [recorded.event for recorded in event_log.events() if recorded.event.query_id == query_id]
        if until(events) or time.monotonic() > deadline:
            return events
        time.sleep(0.1)


def test_events_record_impressions_clicks_and_dwell(page, event_log):
    with page.expect_response(lambda response: is_search(response.request)) as searched:
        upload(page, "chelsea.png", chelsea_copy(), "image/png")
    answered = searched.value.json()
    wait_for_first_result(page, "cats/chelsea.JPEG")
    clicked = answered["results"][2]["id"]
    page.click(".card-button >> nth=2")
    page.wait_for_timeout(300)
    page.click("#viewer-close")

    events = logged(event_log, answered["query_id"], lambda events: any(e.type == "dwell" for e in events))
    (impression,) = [event for event in events if event.type == "impression"]
    assert [(shown.image_id, shown.position) for shown in impression.results] == [
        (hit["id"], position) for position, hit in enumerate(answered["results"], start=1)
    ]
    assert impression.query_sha256 == hashlib.sha256(chelsea_copy()).hexdigest()  # the bytes sent
    (click,) = [event for event in events if event.type == "click"]
    assert (click.image_id, click.position) == (clicked, 3)
    (dwell,) = [event for event in events if event.type == "dwell"]
    assert dwell.image_id == clicked and dwell.dwell_ms >= 250
    (session,) = {event.session_id for event in events}

    # "More like this" names its query by its gallery key, which is what training pairs need.
    page.click(".card-button >> nth=2")
    with page.expect_response(lambda response: is_search(response.request)) as searched_again:
        page.click("#viewer-more")
    again = logged(event_log, searched_again.value.json()["query_id"], lambda events: len(events) >= 1)
    assert [(event.type, event.query_key, event.session_id) for event in again] == [("impression", clicked, session)]


def test_more_results_load_as_the_page_scrolls(page):
    """k grows by a page (24, 48, ...) while the API returns full pages. The test gallery has 8
    images, so "more like this" (a JSON body, readable here) goes to a stub of 60 results."""
    requested: list[int] = []

    def stub(route):
        k = route.request.post_data_json["k"]
        requested.append(k)
        results = [{"id": f"img{i}", "score": 1 - i / 100, "url": "/static/icon.svg"} for i in range(min(k, 60))]
        route.fulfill(json={"results": results, "k": k, "took_ms": 1.0})

    upload(page, "chelsea.png", chelsea_copy(), "image/png")
    page.click(".card-button >> nth=0")
    page.route("**/search", stub)
    page.click("#viewer-more")
    deadline = time.monotonic() + 20
    while page.locator(".card-button").count() < 60:
        assert time.monotonic() < deadline, f"only {page.locator('.card-button').count()} results shown"
        page.locator("#more").scroll_into_view_if_needed()
        page.wait_for_timeout(100)
    settled(page)
    assert requested == [24, 48, 72]
    assert result_ids(page) == [f"img{i}" for i in range(60)]
    assert page.is_hidden("#more-button")


def test_without_suggestions_and_events_the_page_works_as_before(browser, gallery):
    service, source, _ = gallery
    with serving(create_app(service, source)) as url, browsing(browser, url, viewport=DESKTOP) as (page, _):
        posted = []
        page.on("request", lambda request: request.method == "POST" and posted.append(request.url))
        upload(page, "collage.jpg", collage())
        page.wait_for_selector(".card-button")
        drag(page, (0.05, 0.05), (0.45, 0.95))
        wait_for_first_result(page, "coffee")
        page.click(".card-button >> nth=0")
        page.click("#viewer-close")
        assert page.locator(".suggestion").count() == 0
        assert {url.rsplit("/", 1)[-1] for url in posted} == {"search"}  # no /proposals, no /events


def test_a_file_that_is_not_an_image_is_refused_in_the_page(page):
    searched = []
    page.on("request", lambda request: is_search(request) and searched.append(request))
    upload(page, "notes.txt", b"shopping list: milk, eggs\n" * 40, "text/plain")
    page.wait_for_selector("#notice:not([hidden])")
    assert "not an image" in page.inner_text("#notice")
    assert searched == []
    assert page.is_visible("#dropzone")


def test_a_file_over_the_request_limit_is_refused_in_the_page(page):
    # A TIFF (which Chromium cannot show, so it would be sent as it is) over the API's limit.
    upload(page, "scan.tif", b"II*\x00" + bytes(MAX_REQUEST_BYTES), "image/tiff")
    page.wait_for_selector("#notice:not([hidden])")
    assert "too large" in page.inner_text("#notice")


@pytest.mark.parametrize(
    ("status", "message"),
    [(415, "not an image"), (413, "too large for the server"), (500, "failed to answer (error 500)")],
)
def test_api_refusals_are_explained(page_and_console, status, message):
    page, console = page_and_console
    console.allow(rf"status of {status}")
    page.route("**/search", lambda route: route.fulfill(status=status, json={"error": {"status": status, "message": "no"}}))
    upload(page, "chelsea.png", chelsea_copy(), "image/png")
    page.wait_for_selector("#notice:not([hidden])")
    assert message in page.inner_text("#notice")


def test_the_server_going_away_is_reported(browser, gallery, model_path, tmp_path):
    """`lookalike serve` in its own process, stopped as a person would stop it."""
    service, source, _ = gallery
    store = tmp_path / "store"
    shutil.copytree(service.store.path, store)
    port = free_port()
    command = [str(Path(sys.executable).parent / "lookalike"), "serve", "--store", str(store), "--watch",
               str(source.root), "--model", str(model_path), "--port", str(port)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until_serving(f"http://127.0.0.1:{port}/health", process)
        with browsing(browser, f"http://127.0.0.1:{port}/", viewport=DESKTOP) as (page, console):
            upload(page, "chelsea.png", chelsea_copy(), "image/png")
            page.wait_for_selector(".card-button")
            process.terminate()
            process.wait(timeout=10)
            # Whatever was in flight when the server stopped (a result image half sent) fails too.
            console.allow(r"ERR_CONNECTION_REFUSED|ERR_EMPTY_RESPONSE|ERR_CONNECTION_RESET|ERR_CONTENT_LENGTH_MISMATCH")
            drag(page, (0.1, 0.1), (0.6, 0.6))
            page.wait_for_selector("#notice:not([hidden])")
            assert "cannot be reached" in page.inner_text("#notice")
            assert page.is_visible("#notice button:has-text('Try again')")
    finally:
        process.kill()
        process.wait(timeout=10)


def test_an_empty_gallery_says_so(browser, gallery, tmp_path):
    service, source, _ = gallery
    empty = create_app(SearchService(service.embedder, FaissStore(tmp_path / "empty")), source)
    with serving(empty) as url, browsing(browser, url, viewport=DESKTOP) as (page, _):
        assert "gallery is empty" in page.inner_text("#notice")
        assert page.inner_text("#gallery-size") == "Searching 0 images."
        upload(page, "chelsea.png", chelsea_copy(), "image/png")
        page.wait_for_function("() => document.querySelector('#status').textContent === ''")
        settled(page)
        assert "gallery is empty" in page.inner_text("#notice")


def test_a_phone_sized_screen_shows_two_columns_and_takes_touch(browser, url):
    phone = {"viewport": PHONE, "has_touch": True, "is_mobile": True, "device_scale_factor": 2}
    with browsing(browser, url, **phone) as (page, _):
        upload(page, "collage.jpg", collage())
        page.wait_for_selector(".card-button")
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        lefts = {round(card.bounding_box()["x"]) for card in page.locator(".card-button").all()}
        assert len(lefts) == 2
        touch_drag(page, image_point(page, 0.05, 0.1), image_point(page, 0.45, 0.9))
        wait_for_first_result(page, "coffee")


def touch_drag(page, start, end, steps: int = 8) -> None:
    """A finger's drag: Playwright's touchscreen only taps, so the touch events go through CDP."""
    session = page.context.new_cdp_session(page)
    session.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": start[0], "y": start[1]}]})
    for step in range(1, steps + 1):
        x = start[0] + (end[0] - start[0]) * step / steps
        y = start[1] + (end[1] - start[1]) * step / steps
        session.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [{"x": x, "y": y}]})
    session.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_serving(health_url: str, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "lookalike serve exited"
        try:
            if requests.get(health_url, timeout=2).ok:
                return
        except requests.ConnectionError:
            time.sleep(0.2)
    raise TimeoutError(f"{health_url} did not answer within {timeout} s")
