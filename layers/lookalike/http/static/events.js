// What people do with the results, for the learning loop (POST /events; the event models are
// lookalike.events.base): which results a search showed at which positions, which were opened,
// and for how long. Events carry the search's query id and an anonymous id for this browser tab
// (random, kept in sessionStorage, never a person's). A deployment without /events gets nothing
// sent, and a failed send is dropped: the page never waits for events nor reports them.

import { postEvents } from "./api.js";

const SESSION_KEY = "lookalike-session";

export class EventLog {
  constructor() {
    this.enabled = false;
    this.sessionId = null;
    this.dwell = null; // { hit, since } while the large view is open
    document.addEventListener("visibilitychange", () => this.#visibility());
  }

  // Called once the page knows that this deployment has /events.
  enable() {
    this.enabled = true;
    this.sessionId = sessionId();
  }

  // The results one search response added to the grid (they share its query id). `query` says
  // which image was searched: a gallery key ("more like this") or the SHA-256 of the bytes sent.
  async impressions(hits, query) {
    if (!this.enabled || !hits.length || !hits[0].queryId) return;
    const queryFields = query.imageId ? { query_key: query.imageId } : await uploadDigest(query.blob);
    this.#send([
      {
        type: "impression",
        ...this.#common(hits[0].queryId),
        results: hits.map((hit) => ({ image_id: hit.id, position: hit.position })),
        ...queryFields,
      },
    ]);
  }

  click(hit) {
    if (hit.queryId) {
      this.#send([{ type: "click", ...this.#common(hit.queryId), image_id: hit.id, position: hit.position }]);
    }
  }

  // The large view opened (dwell starts) and closed (dwell is sent). Time while the tab is hidden
  // does not count; what was seen before the tab is hidden is sent then, as the tab may never
  // come back, and the rest on closing: one view may give more than one dwell event.
  opened(hit) {
    this.dwell = { hit, since: performance.now() };
  }

  closed() {
    if (!this.dwell) return;
    this.#flushDwell();
    this.dwell = null;
  }

  #visibility() {
    if (!this.dwell) return;
    if (document.visibilityState === "hidden") this.#flushDwell();
    else this.dwell.since = performance.now();
  }

  #flushDwell() {
    const { hit, since } = this.dwell;
    if (since === null) return;
    this.dwell.since = null;
    if (!hit.queryId) return;
    const dwellMs = Math.round(performance.now() - since);
    this.#send([{ type: "dwell", ...this.#common(hit.queryId), image_id: hit.id, dwell_ms: dwellMs }], { beacon: true });
  }

  // Every event has its own id, so that opening the same result twice counts twice while a
  // retried request counts once (the log keys events by it).
  #common(queryId) {
    return { event_id: randomHex(8), query_id: queryId, session_id: this.sessionId };
  }

  #send(events, options) {
    if (this.enabled && events.length) postEvents({ events }, options);
  }
}

// crypto.subtle exists only in a secure context (https, or localhost): elsewhere the upload
// stays unnamed, which the log allows.
async function uploadDigest(blob) {
  try {
    const digest = await crypto.subtle.digest("SHA-256", await blob.arrayBuffer());
    return { query_sha256: [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("") };
  } catch {
    return {};
  }
}

function randomHex(bytes) {
  return [...crypto.getRandomValues(new Uint8Array(bytes))].map((b) => b.toString(16).padStart(2, "0")).join("");
}

// 32 random hex digits; crypto.randomUUID needs a secure context, which plain http on a LAN is not.
function sessionId() {
  try {
    let id = sessionStorage.getItem(SESSION_KEY);
    if (!id) {
      id = randomHex(16);
      sessionStorage.setItem(SESSION_KEY, id);
    }
    return id;
  } catch {
    return randomHex(16); // storage disabled: one id for this page's life
  }
}
