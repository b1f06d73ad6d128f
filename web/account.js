// The account page: who the session cookie says is signed in, and sign out.
"use strict";

(function () {
  const who = document.getElementById("who");
  const out = document.getElementById("signout");
  const say = DirbrokerUi.status(document.getElementById("status"));

  async function load() {
    try {
      const s = await DirbrokerSso.call("GET", "/web/session");
      who.textContent = `Signed in as ${s.uid} (level ${s.level}) until ${new Date(s.expires * 1000).toLocaleString()}.`;
      out.hidden = false;
      document.body.dataset.state = "signed-in";
    } catch (e) {
      who.textContent = "You are not signed in.";
      out.hidden = true;
      document.body.dataset.state = e.status === 401 ? "signed-out" : "error";
    }
  }

  out.addEventListener("click", () => {
    DirbrokerUi.busy(out, async () => {
      try {
        // JSON, like every state-changing call the broker accepts from its pages (login CSRF rule).
        await DirbrokerSso.call("POST", "/web/logout", {});
        say.ok("Signed out.");
      } catch (e) {
        say.error(e.message);
      }
      await load();
    });
  });
  load();
})();
