// The sign-in page: user, password typed with the enrolled rhythm, optional
// OTP code → hardened password → pw (Argon2id) → Schnorr proof → POST
// /web/login (the broker sets the session cookie) → `next` or /account.
"use strict";

(function () {
  const form = document.getElementById("signin");
  const uid = document.getElementById("uid");
  const pw = document.getElementById("pw");
  const otp = document.getElementById("otp");
  const button = form.querySelector("button[type=submit]");
  // The web session's login (broker/src/serve/session.rs) takes the body of
  // /v1/sso/login, runs the same checks and sets the session cookie.
  const LOGIN_PATH = "/web/login";
  const say = DirbrokerUi.status(document.getElementById("status"));
  const capture = DirbrokerCapture.attach(pw, (text) => say.error(text, "retype"));

  // Only a same-origin path to the OpenID Connect authorize endpoint is
  // followed; anything else (another origin, javascript:, //host) → /account.
  function next() {
    const raw = new URLSearchParams(location.search).get("next");
    if (raw && raw.startsWith("/oidc/authorize?")) {
      const u = new URL(raw, location.origin);
      if (u.origin === location.origin && u.pathname === "/oidc/authorize") return u.pathname + u.search;
    }
    return "/account";
  }

  function retype(text, state) {
    capture.reset();
    say.error(text, state);
    pw.focus();
  }

  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const started = performance.now();
    DirbrokerUi.busy(button, async () => {
      if (!uid.value) {
        say.error("Enter your user name.");
        uid.focus();
        return;
      }
      let hardened;
      try {
        hardened = await DirbrokerKeystroke.harden(pw.value, capture.durations());
      } catch (e) {
        // The paper's 1-2-3 at sign-in: an ambiguous rhythm is asked again.
        retype(e.kind === "ambiguous"
          ? "Your long and short keys were too close to tell apart. Type the password again, holding the long " +
            "keys clearly longer."
          : e.message, e.kind === "ambiguous" ? "ambiguous" : "retype");
        return;
      }
      try {
        say.info("Checking your password…");
        const { body, argon2Ms } = await DirbrokerSso.loginBody(uid.value, hardened, otp.value.trim());
        hardened.fill(0);
        const session = await DirbrokerSso.call("POST", LOGIN_PATH, body);
        // Timings of this sign-in (submit → session; Argon2id), for bench/web.sh.
        sessionStorage.setItem("dirbroker.signin", JSON.stringify({ ms: performance.now() - started, argon2Ms }));
        // Still busy: the next page tells the outcome.
        say.info(`Signed in as ${session.uid}; opening the next page…`);
        location.assign(next());
      } catch (e) {
        retype(e.message, "refused");
      }
    });
  });
})();
