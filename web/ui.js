// What the three pages share: the status line (aria-live) and busy buttons.
// Text only ever goes in with textContent: nothing from the URL or the
// broker is parsed as HTML.
"use strict";

(function (root) {
  function status(el) {
    return {
      info(text) {
        el.className = "status";
        el.textContent = text;
        document.body.dataset.state = "busy";
      },
      ok(text) {
        el.className = "status ok";
        el.textContent = text;
        document.body.dataset.state = "ok";
      },
      error(text, state) {
        el.className = "status error";
        el.textContent = text;
        document.body.dataset.state = state || "error";
      },
    };
  }

  async function busy(button, work) {
    button.disabled = true;
    button.setAttribute("aria-busy", "true");
    try {
      return await work();
    } finally {
      button.disabled = false;
      button.removeAttribute("aria-busy");
    }
  }

  root.DirbrokerUi = { status, busy };
})(globalThis);
