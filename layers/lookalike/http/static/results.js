// The results grid: a masonry of cards (CSS columns), best first in reading order, each with its
// similarity. More results come by asking again with a larger k (the API ranks the same query
// the same way every time, so the first results stay put and only new ones are appended).

export const PAGE_SIZE = 24;

export class ResultsGrid {
  constructor(list, { onOpen }) {
    this.list = list;
    this.onOpen = onOpen;
    this.hits = []; // { id, score, url, queryId, position }
  }

  clear() {
    this.hits = [];
    this.list.replaceChildren();
  }

  // Shows a response's results; returns those that are new (their impressions are still due).
  show(results, queryId) {
    const keeps = this.hits.every((hit, index) => results[index]?.id === hit.id);
    if (!keeps) this.clear();
    const fresh = results.slice(this.hits.length).map((hit, index) => ({
      ...hit,
      queryId,
      position: this.hits.length + index + 1,
    }));
    this.hits.push(...fresh);
    this.list.append(...fresh.map((hit) => this.#card(hit)));
    return fresh;
  }

  #card(hit) {
    const item = document.createElement("li");
    item.className = "card";
    const button = document.createElement("button");
    button.type = "button";
    button.className = "card-button";
    button.dataset.id = hit.id;
    const image = document.createElement("img");
    image.src = hit.url;
    image.alt = imageLabel(hit.id);
    image.loading = "lazy";
    image.decoding = "async";
    // Until it loads, a card keeps a photo's usual shape: a grid of flat placeholders would
    // look as if it ended on the first screen and ask for the next page at once.
    image.addEventListener("load", () => item.classList.add("loaded"), { once: true });
    const score = document.createElement("span");
    score.className = "score";
    score.textContent = `similarity ${hit.score.toFixed(2)}`;
    button.append(image, score);
    button.addEventListener("click", () => this.onOpen(hit, button));
    item.append(button);
    return item;
  }
}

// A gallery id is a relative path ("kitchen/lamp_1.jpg"); read aloud, "lamp 1, in kitchen" says
// more than the path does. It is the only description of an image the gallery has.
export function imageLabel(id) {
  const parts = id.split("/");
  const name = parts.pop().replace(/\.[a-z0-9]{2,5}$/i, "").replace(/[_-]+/g, " ").trim() || id;
  return parts.length ? `${name}, in ${parts.join("/")}` : name;
}
