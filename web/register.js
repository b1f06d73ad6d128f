// The registration page: the password typed three times with the user's
// rhythm (enrolment, paper §3.3 1단계), an invitation code from the
// administrator, then what `dirbroker register` does (web/sso.js).
"use strict";

(function () {
  const form = document.getElementById("register");
  const uid = document.getElementById("uid");
  const invite = document.getElementById("invite");
  const fields = ["pw1", "pw2", "pw3"].map((id) => document.getElementById(id));
  const button = form.querySelector("button[type=submit]");
  const say = DirbrokerUi.status(document.getElementById("status"));
  const captures = fields.map((f) => DirbrokerCapture.attach(f, (text) => say.error(text, "retype")));

  function again(text, state) {
    captures.forEach((c) => c.reset());
    say.error(text, state);
    fields[0].focus();
  }

  const WHY = {
    ambiguous: "Your long and short keys were too close to tell apart. Type the password three times again, " +
      "holding the long keys clearly longer than the short ones (or all keys alike).",
    samples_disagree: "The three typings did not hold the same keys long. Type the password three times again " +
      "with the same rhythm.",
  };

  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    DirbrokerUi.busy(button, async () => {
      if (!uid.value || !invite.value.trim()) {
        say.error("Enter your user name and the invitation code.");
        (uid.value ? invite : uid).focus();
        return;
      }
      if (fields.some((f) => f.value !== fields[0].value)) {
        again("The three passwords differ. Type the same password three times.", "retype");
        return;
      }
      let enrolment;
      try {
        enrolment = await DirbrokerKeystroke.enrol(fields[0].value, captures.map((c) => c.durations()));
      } catch (e) {
        again(WHY[e.kind] || e.message, e.kind === "ambiguous" ? "ambiguous" : "retype");
        return;
      }
      try {
        const published = await DirbrokerSso.register(uid.value, enrolment.hardened, invite.value.trim(),
          (text) => say.info(text));
        enrolment.hardened.fill(0);
        captures.forEach((c) => c.reset());
        const rhythm = enrolment.rhythm === "even"
          ? " You typed all keys alike, so the rhythm adds nothing to your password."
          : ` Sign in holding the same ${enrolment.longKeys} key(s) long.`;
        say.ok(`Registered ${published.id_c} at level ${published.level}.${rhythm}`);
        document.body.dataset.rhythm = enrolment.rhythm;
      } catch (e) {
        again(e.message, "refused");
      }
    });
  });
})();
