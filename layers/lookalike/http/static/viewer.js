// The large view of one result: a modal <dialog>, so the browser keeps focus inside it, closes
// it on Escape and makes the rest of the page inert. Focus goes to its first button on opening
// and back to the card that opened it on closing.

import { imageLabel } from "./results.js";

export class Viewer {
  constructor(dialog, { onClose, onMoreLikeThis }) {
    this.dialog = dialog;
    this.title = dialog.querySelector("#viewer-title");
    this.image = dialog.querySelector("#viewer-image");
    this.score = dialog.querySelector("#viewer-score");
    this.hit = null;
    this.opener = null;
    dialog.querySelector("#viewer-close").addEventListener("click", () => dialog.close());
    dialog.querySelector("#viewer-more").addEventListener("click", () => {
      const hit = this.hit;
      this.opener = null; // the grid is about to be replaced: focus goes to the new query
      dialog.close();
      onMoreLikeThis(hit);
    });
    // A click on the backdrop lands on the dialog element itself.
    dialog.addEventListener("click", (event) => {
      if (event.target === dialog) dialog.close();
    });
    dialog.addEventListener("close", () => {
      const hit = this.hit;
      this.hit = null;
      this.image.removeAttribute("src");
      onClose(hit);
      this.opener?.focus();
    });
  }

  open(hit, opener) {
    this.hit = hit;
    this.opener = opener;
    this.title.textContent = imageLabel(hit.id);
    this.image.src = hit.url;
    this.image.alt = imageLabel(hit.id);
    this.score.textContent = `Result ${hit.position}, similarity ${hit.score.toFixed(2)}`;
    this.dialog.showModal();
    this.dialog.querySelector("#viewer-more").focus();
  }
}
