// The fragment box drawn on the query image: with a mouse or a finger (pointer events) and with
// the keyboard. It holds its rectangle as fractions of the image ({x0, y0, x1, y1} in 0..1), so
// it does not care how large the image is drawn; `pixelBox` turns it into the API's half-open
// pixel box of the image that is sent. `null` stands for the whole image.
//
// Fires "change" (detail: { rect, immediate }) whenever the person changes it; `immediate` when
// a search should not wait (a drag released, a suggestion chosen).

const KEY_STEP = 0.02; // of the image's side, per key press
const DRAG_THRESHOLD_PX = 4; // a press that moves less is a click, not a new box
const MIN_FRACTION = 0.04; // the smallest box, as a fraction of each side, for a usable handle

export const WHOLE = { x0: 0, y0: 0, x1: 1, y1: 1 };

const clamp = (value, low, high) => Math.min(high, Math.max(low, value));

export class FragmentBox extends EventTarget {
  constructor(stage, element) {
    super();
    this.stage = stage;
    this.element = element;
    this.rect = null;
    this.minWidth = MIN_FRACTION;
    this.minHeight = MIN_FRACTION;
    this.gesture = null;
    stage.addEventListener("pointerdown", (event) => this.#press(event));
    stage.addEventListener("pointermove", (event) => this.#drag(event));
    stage.addEventListener("pointerup", (event) => this.#release(event));
    stage.addEventListener("pointercancel", (event) => this.#release(event));
    element.addEventListener("keydown", (event) => this.#key(event));
  }

  // The image's size in the pixels the API counts, and the smallest box side it accepts there.
  setImageSize(width, height, minSidePixels) {
    this.minWidth = Math.max(MIN_FRACTION, minSidePixels / width);
    this.minHeight = Math.max(MIN_FRACTION, minSidePixels / height);
  }

  get isWhole() {
    return this.rect === null;
  }

  set(rect, { immediate = false, notify = true } = {}) {
    this.rect = rect && !isWhole(rect) ? rect : null;
    this.#render();
    if (notify) this.dispatchEvent(new CustomEvent("change", { detail: { rect: this.rect, immediate } }));
  }

  // [x0, y0, x1, y1] in whole pixels of a width x height image, or null for the whole image.
  pixelBox(width, height) {
    if (!this.rect) return null;
    const x0 = clamp(Math.floor(this.rect.x0 * width), 0, width - 1);
    const y0 = clamp(Math.floor(this.rect.y0 * height), 0, height - 1);
    const x1 = clamp(Math.ceil(this.rect.x1 * width), x0 + 1, width);
    const y1 = clamp(Math.ceil(this.rect.y1 * height), y0 + 1, height);
    return [x0, y0, x1, y1];
  }

  #render() {
    const { x0, y0, x1, y1 } = this.rect ?? WHOLE;
    const style = this.element.style;
    style.left = `${x0 * 100}%`;
    style.top = `${y0 * 100}%`;
    style.width = `${(x1 - x0) * 100}%`;
    style.height = `${(y1 - y0) * 100}%`;
    this.element.classList.toggle("whole", this.isWhole);
  }

  #point(event) {
    const bounds = this.stage.getBoundingClientRect();
    return {
      x: clamp((event.clientX - bounds.left) / bounds.width, 0, 1),
      y: clamp((event.clientY - bounds.top) / bounds.height, 0, 1),
      clientX: event.clientX,
      clientY: event.clientY,
    };
  }

  #press(event) {
    if (event.button !== 0) return;
    const handle = event.target.dataset?.handle;
    const start = this.#point(event);
    const rect = this.rect;
    let mode = "draw";
    if (handle && rect) mode = "resize";
    else if (rect && start.x >= rect.x0 && start.x <= rect.x1 && start.y >= rect.y0 && start.y <= rect.y1) mode = "move";
    this.gesture = { mode, handle, start, origin: rect ?? WHOLE, moved: false };
    // A press on a suggested dot is the dot's click unless it turns into a drag.
    if (!event.target.closest(".suggestion")) this.#grab(event);
  }

  #drag(event) {
    const gesture = this.gesture;
    if (!gesture) return;
    if (event.buttons === 0) {
      this.#release(event); // released where we could not hear it
      return;
    }
    const point = this.#point(event);
    if (!gesture.moved) {
      const distance = Math.hypot(point.clientX - gesture.start.clientX, point.clientY - gesture.start.clientY);
      if (distance < DRAG_THRESHOLD_PX) return;
      gesture.moved = true;
      this.#grab(event);
    }
    const rect = { draw: drawn, move: moved, resize: resized }[gesture.mode](gesture, point, this);
    this.set(rect);
  }

  // From here the stage has the pointer, even outside the image (and a dot pressed first gets no
  // click); no text selection nor image drag starts; the box has the focus, so the arrow keys
  // then act on the box just drawn.
  #grab(event) {
    if (!this.stage.hasPointerCapture(event.pointerId)) this.stage.setPointerCapture(event.pointerId);
    this.stage.classList.add("dragging");
    event.preventDefault();
    this.element.focus({ preventScroll: true });
  }

  #release(event) {
    const gesture = this.gesture;
    if (!gesture) return;
    this.gesture = null;
    this.stage.classList.remove("dragging");
    if (this.stage.hasPointerCapture(event.pointerId)) this.stage.releasePointerCapture(event.pointerId);
    if (gesture.moved) this.set(this.rect, { immediate: true });
  }

  #key(event) {
    const delta = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] }[event.key];
    if (!delta || event.altKey || event.ctrlKey || event.metaKey) return;
    event.preventDefault();
    const [dx, dy] = [delta[0] * KEY_STEP, delta[1] * KEY_STEP];
    const rect = this.rect ?? WHOLE;
    if (event.shiftKey) {
      // Shift moves the right and bottom edges: right and down grow the box, left and up shrink it.
      this.set({
        ...rect,
        x1: clamp(rect.x1 + dx, rect.x0 + this.minWidth, 1),
        y1: clamp(rect.y1 + dy, rect.y0 + this.minHeight, 1),
      });
    } else if (this.rect) {
      this.set(shifted(rect, dx, dy));
    }
  }
}

function isWhole(rect) {
  return rect.x0 <= 0 && rect.y0 <= 0 && rect.x1 >= 1 && rect.y1 >= 1;
}

function shifted(rect, dx, dy) {
  const width = rect.x1 - rect.x0;
  const height = rect.y1 - rect.y0;
  const x0 = clamp(rect.x0 + dx, 0, 1 - width);
  const y0 = clamp(rect.y0 + dy, 0, 1 - height);
  return { x0, y0, x1: x0 + width, y1: y0 + height };
}

// A new box from where the press started to where the pointer is, at least the smallest size.
function drawn(gesture, point, box) {
  const { start } = gesture;
  const x0 = point.x < start.x ? Math.max(0, Math.min(point.x, start.x - box.minWidth)) : start.x;
  const y0 = point.y < start.y ? Math.max(0, Math.min(point.y, start.y - box.minHeight)) : start.y;
  const x1 = point.x < start.x ? start.x : Math.min(1, Math.max(point.x, start.x + box.minWidth));
  const y1 = point.y < start.y ? start.y : Math.min(1, Math.max(point.y, start.y + box.minHeight));
  return fitted({ x0, y0, x1, y1 }, box);
}

function moved(gesture, point) {
  return shifted(gesture.origin, point.x - gesture.start.x, point.y - gesture.start.y);
}

// A corner handle follows the pointer; the opposite corner stays where it was.
function resized(gesture, point, box) {
  const rect = { ...gesture.origin };
  if (gesture.handle.includes("w")) rect.x0 = clamp(point.x, 0, rect.x1 - box.minWidth);
  if (gesture.handle.includes("e")) rect.x1 = clamp(point.x, rect.x0 + box.minWidth, 1);
  if (gesture.handle.includes("n")) rect.y0 = clamp(point.y, 0, rect.y1 - box.minHeight);
  if (gesture.handle.includes("s")) rect.y1 = clamp(point.y, rect.y0 + box.minHeight, 1);
  return rect;
}

// Near an edge the smallest box may not fit on the side the pointer went: push it inside.
function fitted(rect, box) {
  const width = Math.max(rect.x1 - rect.x0, box.minWidth);
  const height = Math.max(rect.y1 - rect.y0, box.minHeight);
  const x0 = clamp(rect.x0, 0, 1 - width);
  const y0 = clamp(rect.y0, 0, 1 - height);
  return { x0, y0, x1: x0 + width, y1: y0 + height };
}
