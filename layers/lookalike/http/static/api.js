// Calls to the Lookalike API. Every failure becomes an ApiError whose `kind` the page turns into
// a message, so no caller reads HTTP statuses, and nothing is ever left to the console.

export class ApiError extends Error {
  constructor(kind, message, status = 0) {
    super(message);
    this.name = "ApiError";
    this.kind = kind;
    this.status = status;
  }
}

// What a status means to the person using the page. 502-504 come from a proxy or API Gateway
// when the server behind it is down or timed out: to the person that is "unreachable".
const KIND_BY_STATUS = {
  404: "not-found",
  413: "too-large",
  415: "not-image",
  422: "invalid",
  502: "unreachable",
  503: "unreachable",
  504: "unreachable",
};

async function call(path, init = {}) {
  let response;
  try {
    response = await fetch(path, { ...init, headers: { Accept: "application/json", ...init.headers } });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError("unreachable", "The server cannot be reached.");
  }
  if (response.ok) {
    return response.status === 202 || response.status === 204 ? null : response.json();
  }
  const kind = KIND_BY_STATUS[response.status] ?? (response.status >= 500 ? "server" : "invalid");
  throw new ApiError(kind, await errorMessage(response), response.status);
}

async function errorMessage(response) {
  try {
    const document = await response.json();
    return document?.error?.message ?? response.statusText;
  } catch {
    // API Gateway's own refusals (its 413, say) are not our JSON.
    return response.statusText || `error ${response.status}`;
  }
}

// A query names its image by bytes (an upload) or by gallery id ("more like this"). Bytes go as
// multipart/form-data, the cheapest encoding for them; an id goes as JSON.
function queryBody(query, fields) {
  if (query.imageId !== undefined) {
    return {
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ image_id: query.imageId, ...fields }),
    };
  }
  const form = new FormData();
  form.append("image", query.blob, query.filename);
  for (const [name, value] of Object.entries(fields)) form.append(name, String(value));
  return { body: form };
}

export function search(query, { k, box, signal }) {
  const fields = box ? { k, box } : { k }; // a form field reads the box as "x0,y0,x1,y1"
  return call("search", { method: "POST", signal, ...queryBody(query, fields) });
}

export function proposals(query, { signal }) {
  return call("proposals", { method: "POST", signal, ...queryBody(query, {}) });
}

export function health() {
  return call("health");
}

// Which optional routes this deployment has (`/proposals`, `/events`), read from the OpenAPI
// document rather than by trying them: a probe that 404s would print an error in the console.
export async function availablePaths() {
  try {
    const document = await call("openapi.json");
    return new Set(Object.keys(document?.paths ?? {}));
  } catch {
    return new Set();
  }
}

// Events must never disturb the page: failures are dropped. `beacon` survives the page closing.
export function postEvents(payload, { beacon = false } = {}) {
  const body = JSON.stringify(payload);
  if (beacon && navigator.sendBeacon?.("events", new Blob([body], { type: "application/json" }))) return;
  fetch("events", { method: "POST", headers: { "Content-Type": "application/json" }, body, keepalive: true })
    .catch(() => {});
}
