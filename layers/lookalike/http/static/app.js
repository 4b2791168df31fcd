// The page: pick an image (file, drop, paste) or a result ("more like this"), optionally draw a
// box on it, and browse what looks alike. Wires the parts together and owns what the page says:
// every failure ends as a message in the page, never as a blank page or a console error.

import * as api from "./api.js";
import { FragmentBox, WHOLE } from "./box.js";
import { EventLog } from "./events.js";
import { PAGE_SIZE, ResultsGrid, imageLabel } from "./results.js";
import { UploadError, firstImageFile, megabytes, prepareUpload } from "./upload.js";
import { Viewer } from "./viewer.js";

const DEBOUNCE_MS = 300;
const limits = JSON.parse(document.body.dataset.limits);

const ui = Object.fromEntries(
  [
    "dropzone", "file-input", "query-panel", "stage", "query-image", "no-preview", "box", "suggestions",
    "box-position", "query-label", "reset-box", "notice", "status", "results", "more", "more-button",
    "viewer", "gallery-size",
  ].map((id) => [id.replace(/-(\w)/g, (_, letter) => letter.toUpperCase()), document.getElementById(id)]),
);

const state = {
  query: null, // { imageId } or { blob, filename }, with width, height, previewUrl, label
  k: PAGE_SIZE,
  hasMore: false,
  search: null, // the AbortController of the search in flight
  proposals: null, // the AbortController of the proposals request in flight
  boxTimer: 0,
  proposalsAvailable: false,
  galleryCount: null,
};

const box = new FragmentBox(ui.stage, ui.box);
const grid = new ResultsGrid(ui.results, { onOpen: openResult });
const events = new EventLog();
const viewer = new Viewer(ui.viewer, {
  onClose: () => events.closed(),
  onMoreLikeThis: (hit) => startGalleryQuery(hit.id, hit.url),
});

// ---- choosing a query -------------------------------------------------------------------------

async function startUpload(file) {
  clearNotice();
  setStatus("Preparing your image…", { busy: true });
  let prepared;
  try {
    prepared = await prepareUpload(file, limits.maxRequestBytes);
  } catch (error) {
    setStatus("");
    showError(error);
    return;
  }
  const scaled = prepared.scaled ? ` (scaled down to ${prepared.width} × ${prepared.height} pixels)` : "";
  setQuery({ ...prepared, label: `Your image${scaled}` });
}

function startGalleryQuery(imageId, url) {
  clearNotice();
  setQuery({ imageId, previewUrl: url, width: null, height: null, label: `More like: ${imageLabel(imageId)}` });
  ui.box.focus({ preventScroll: true });
}

function setQuery(query) {
  state.search?.abort();
  state.proposals?.abort();
  clearTimeout(state.boxTimer);
  if (state.query?.blob && state.query.previewUrl) URL.revokeObjectURL(state.query.previewUrl);
  state.query = query;
  grid.clear();
  box.set(null, { notify: false });
  ui.suggestions.replaceChildren();
  renderBoxState();
  ui.dropzone.hidden = true;
  ui.queryPanel.hidden = false;
  ui.queryLabel.textContent = query.label;
  ui.noPreview.hidden = Boolean(query.previewUrl);
  ui.stage.hidden = !query.previewUrl;
  if (query.previewUrl) {
    ui.queryImage.alt = query.imageId ? imageLabel(query.imageId) : "Your image";
    ui.queryImage.src = query.previewUrl;
    imageSize(query).then(() => {
      if (state.query !== query) return;
      box.setImageSize(query.width, query.height, limits.minBoxSide);
      loadProposals(query);
    });
  }
  window.scrollTo({ top: 0, behavior: reducedMotion() ? "auto" : "smooth" });
  runSearch();
}

// A gallery image's size is known once it has loaded (as displayed: EXIF orientation applied,
// the same pixels the API counts); an upload's is known already.
async function imageSize(query) {
  if (query.width) return;
  try {
    await ui.queryImage.decode();
    query.width = ui.queryImage.naturalWidth;
    query.height = ui.queryImage.naturalHeight;
  } catch {
    // The image did not load (the server went away): the search reports why.
  }
}

function abandonQuery() {
  state.query = null;
  grid.clear();
  ui.queryPanel.hidden = true;
  ui.dropzone.hidden = false;
  setMore(false);
}

// ---- searching --------------------------------------------------------------------------------

async function runSearch({ more = false } = {}) {
  const query = state.query;
  if (!query) return;
  state.search?.abort();
  const controller = new AbortController();
  state.search = controller;
  const k = more ? Math.min(state.k + PAGE_SIZE, limits.maxK) : PAGE_SIZE;
  const pixelBox = query.width ? box.pixelBox(query.width, query.height) : null;
  setStatus(more ? "Loading more results…" : "Searching…", { busy: true });
  try {
    const response = await api.search(query, { k, box: pixelBox, signal: controller.signal });
    if (!more) grid.clear();
    state.k = k;
    events.impressions(grid.show(response.results, response.query_id), query);
    setMore(response.results.length >= k && k < limits.maxK);
    clearNotice();
    reportResults(pixelBox);
  } catch (error) {
    if (error.name === "AbortError") return;
    setStatus("");
    if (!more && !query.previewUrl && ["not-image", "too-large"].includes(error.kind)) abandonQuery();
    showError(error, () => runSearch({ more }));
  } finally {
    if (state.search === controller) {
      state.search = null;
      ui.results.setAttribute("aria-busy", "false");
    }
  }
}

function reportResults(pixelBox) {
  const count = grid.hits.length;
  if (count === 0) {
    setStatus("");
    showNotice("info", state.galleryCount === 0 ? EMPTY_GALLERY : "No similar images found. Try the whole image, or another image.");
    return;
  }
  const what = pixelBox ? "for the box" : "for the whole image";
  setStatus(`${count} result${count === 1 ? "" : "s"} ${what}, most alike first.`);
}

// Scrolling near the end asks for the next page; the button does the same for keyboards.
const nearTheEnd = new IntersectionObserver((entries) => {
  if (entries.some((entry) => entry.isIntersecting) && state.hasMore && !state.search) runSearch({ more: true });
}, { rootMargin: "400px" });

function setMore(hasMore) {
  state.hasMore = hasMore;
  ui.moreButton.hidden = !hasMore;
  // Observing afresh reports the current state at once: a page that did not fill the screen
  // asks for the next one without waiting for a scroll that cannot happen.
  nearTheEnd.unobserve(ui.more);
  if (hasMore) nearTheEnd.observe(ui.more);
}

// ---- the box and the suggested fragments ------------------------------------------------------

// The results follow the box once it has rested for DEBOUNCE_MS (a drag that pauses, the arrow
// keys between presses), and at once when a drag is released or a suggestion chosen.
box.addEventListener("change", (event) => {
  renderBoxState();
  clearTimeout(state.boxTimer);
  if (event.detail.immediate) runSearch();
  else state.boxTimer = setTimeout(runSearch, DEBOUNCE_MS);
});

function renderBoxState() {
  const query = state.query;
  const pixelBox = query?.width ? box.pixelBox(query.width, query.height) : null;
  ui.resetBox.disabled = !pixelBox;
  ui.boxPosition.textContent = pixelBox
    ? `Searching the box from ${pixelBox[0]}, ${pixelBox[1]} to ${pixelBox[2]}, ${pixelBox[3]} ` +
      `(${pixelBox[2] - pixelBox[0]} × ${pixelBox[3] - pixelBox[1]} pixels).`
    : "Searching the whole image.";
  for (const dot of ui.suggestions.querySelectorAll(".suggestion")) {
    dot.setAttribute("aria-pressed", String(sameRect(JSON.parse(dot.dataset.rect), box.rect ?? WHOLE)));
  }
}

async function loadProposals(query) {
  if (!state.proposalsAvailable) return;
  const controller = new AbortController();
  state.proposals = controller;
  try {
    const response = await api.proposals(query, { signal: controller.signal });
    if (state.query === query) renderSuggestions(response);
  } catch {
    // Suggestions are a help, not a requirement: without them the page works as before.
  }
}

function renderSuggestions({ width, height, proposals }) {
  const rects = proposals.map(({ box: [x0, y0, x1, y1] }) => ({ x0: x0 / width, y0: y0 / height, x1: x1 / width, y1: y1 / height }));
  const places = dotPlaces(rects, ui.queryImage.getBoundingClientRect());
  const dots = rects.map((rect, index) => {
    const dot = document.createElement("button");
    dot.type = "button";
    dot.className = "suggestion";
    dot.dataset.rect = JSON.stringify(rect);
    dot.style.left = `${places[index].x * 100}%`;
    dot.style.top = `${places[index].y * 100}%`;
    dot.setAttribute("aria-label", `Suggested fragment ${index + 1} of ${proposals.length}`);
    dot.setAttribute("aria-pressed", "false");
    const outline = document.createElement("span");
    outline.className = "suggestion-outline";
    Object.assign(outline.style, {
      left: `${rect.x0 * 100}%`,
      top: `${rect.y0 * 100}%`,
      width: `${(rect.x1 - rect.x0) * 100}%`,
      height: `${(rect.y1 - rect.y0) * 100}%`,
    });
    const show = (visible) => outline.classList.toggle("visible", visible);
    for (const [name, visible] of [["pointerenter", true], ["pointerleave", false], ["focus", true], ["blur", false]]) {
      dot.addEventListener(name, () => show(visible));
    }
    dot.addEventListener("click", () => box.set(rect, { immediate: true }));
    return [outline, dot];
  });
  ui.suggestions.replaceChildren(...dots.flat());
  renderBoxState();
}

// Where each dot goes: its box's centre, unless an earlier (better) dot sits there already;
// then the nearest of a few other points inside its box that leaves room, so that every dot
// can be seen and pressed.
const DOT_SPACING_PX = 34;
const DOT_SPOTS = [0.5, 0.35, 0.65, 0.2, 0.8]
  .flatMap((fy) => [0.5, 0.35, 0.65, 0.2, 0.8].map((fx) => ({ fx, fy })))
  .sort((a, b) => Math.hypot(a.fx - 0.5, a.fy - 0.5) - Math.hypot(b.fx - 0.5, b.fy - 0.5));

function dotPlaces(rects, shown) {
  const placed = [];
  for (const rect of rects) {
    const spots = DOT_SPOTS.map(({ fx, fy }) => ({ x: rect.x0 + fx * (rect.x1 - rect.x0), y: rect.y0 + fy * (rect.y1 - rect.y0) }));
    const roomy = (spot) =>
      placed.every((other) => Math.hypot((spot.x - other.x) * shown.width, (spot.y - other.y) * shown.height) >= DOT_SPACING_PX);
    placed.push(spots.find(roomy) ?? spots[0]);
  }
  return placed;
}

function sameRect(a, b) {
  return ["x0", "y0", "x1", "y1"].every((side) => Math.abs(a[side] - b[side]) < 1e-6);
}

// ---- the large view ---------------------------------------------------------------------------

function openResult(hit, card) {
  events.click(hit);
  events.opened(hit);
  viewer.open(hit, card);
}

// ---- what the page says -----------------------------------------------------------------------

const EMPTY_GALLERY =
  "The gallery is empty: there is nothing to search yet. Index a folder of images " +
  "(lookalike index PHOTOS_DIR) or drop images into the watched folder, then reload this page.";

const MESSAGES = {
  "unreachable": () => "The Lookalike server cannot be reached. Check that it is running, then try again.",
  "not-image": () => "This file is not an image Lookalike can read. Try a JPEG, PNG, WebP, GIF, BMP or TIFF file.",
  "too-large": (error) =>
    error instanceof UploadError
      ? `This file is too large. ${error.message}`
      : `This image is too large for the server (the limit is ${megabytes(limits.maxRequestBytes)}).`,
  "not-found": () => "That image is no longer in the gallery.",
  "invalid": (error) => `The server refused the request: ${error.message}`,
  "server": (error) => `The server failed to answer (error ${error.status}). Try again in a moment.`,
};

function showError(error, retry = null) {
  const explain = MESSAGES[error.kind] ?? (() => `Something went wrong: ${error.message}`);
  const retryable = retry && ["unreachable", "server"].includes(error.kind);
  showNotice("error", explain(error), retryable ? retry : null);
}

function showNotice(kind, text, retry = null) {
  const message = document.createElement("p");
  message.textContent = text;
  ui.notice.replaceChildren(message);
  if (retry) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "button";
    button.textContent = "Try again";
    button.addEventListener("click", () => {
      clearNotice();
      retry();
    });
    ui.notice.append(button);
  }
  ui.notice.dataset.kind = kind;
  ui.notice.hidden = false;
}

function clearNotice() {
  ui.notice.hidden = true;
  ui.notice.replaceChildren();
}

function setStatus(text, { busy = false } = {}) {
  ui.status.textContent = text;
  ui.status.classList.toggle("busy", busy);
  ui.results.setAttribute("aria-busy", String(busy));
}

function reducedMotion() {
  return window.matchMedia("(prefers-reduced-motion: reduce)").matches;
}

// ---- input: picking, dropping, pasting ----------------------------------------------------------

for (const button of document.querySelectorAll('[data-action="choose"]')) {
  button.addEventListener("click", () => ui.fileInput.click());
}
ui.fileInput.addEventListener("change", () => {
  const file = ui.fileInput.files[0];
  ui.fileInput.value = ""; // choosing the same file again is a change too
  if (file) startUpload(file);
});

const carriesFiles = (event) => event.dataTransfer?.types.includes("Files");
document.addEventListener("dragover", (event) => {
  if (!carriesFiles(event)) return;
  event.preventDefault();
  document.body.classList.add("dropping");
});
document.addEventListener("dragleave", (event) => {
  if (event.relatedTarget === null) document.body.classList.remove("dropping");
});
document.addEventListener("drop", (event) => {
  document.body.classList.remove("dropping");
  if (!carriesFiles(event)) return;
  event.preventDefault();
  const file = firstImageFile(event.dataTransfer);
  if (file) startUpload(file);
});
document.addEventListener("paste", (event) => {
  const file = firstImageFile(event.clipboardData);
  if (!file) return;
  event.preventDefault();
  startUpload(file);
});

ui.resetBox.addEventListener("click", () => {
  box.set(null, { immediate: true });
  ui.box.focus();
});
ui.moreButton.addEventListener("click", () => runSearch({ more: true }));

// ---- start --------------------------------------------------------------------------------------

async function start() {
  const [health, paths] = await Promise.all([api.health().catch((error) => error), api.availablePaths()]);
  state.proposalsAvailable = paths.has("/proposals");
  if (paths.has("/events")) events.enable();
  if (health instanceof Error) {
    showError(health, () => location.reload());
    return;
  }
  const count = health.gallery;
  state.galleryCount = count;
  ui.gallerySize.textContent = `Searching ${count.toLocaleString("en")} image${count === 1 ? "" : "s"}.`;
  if (count === 0) showNotice("info", EMPTY_GALLERY);
}

start();
