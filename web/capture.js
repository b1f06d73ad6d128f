// Key-hold capture on a password field (seed 004, paper §3.3 1-1): one
// duration per character, keydown → keyup from event.timeStamp (the time the
// browser stamped on the event, not when the script ran). A held key's
// auto-repeat gives one character (1-1-1): repeats are dropped before they
// reach the field. Editing (Backspace, Delete, paste, drop, an input method
// composing a character) cannot be matched to holds, so it clears the field
// and the user types the password again.
"use strict";

(function (root) {
  function isCharacter(ev) {
    return Array.from(ev.key).length === 1 && !ev.ctrlKey && !ev.metaKey && !ev.altKey;
  }

  // attach(input, tell) → { durations(), reset() }; tell(text) announces why
  // the field was cleared.
  function attach(input, tell) {
    let entries = [];
    let broken = false;

    function reset() {
      entries = [];
      broken = false;
      input.value = "";
    }

    function startOver(why, ev) {
      if (ev) ev.preventDefault();
      reset();
      tell(why);
    }

    input.addEventListener("keydown", (ev) => {
      if (ev.isComposing || ev.key === "Process") {
        broken = true;
        return;
      }
      if (isCharacter(ev)) {
        if (ev.repeat) {
          ev.preventDefault();
          return;
        }
        entries.push({ ch: ev.key, code: ev.code, down: ev.timeStamp, up: null });
      } else if (ev.key === "Backspace" || ev.key === "Delete" || ((ev.ctrlKey || ev.metaKey) && !ev.altKey &&
                 ev.key.toLowerCase() !== "a")) {
        startOver("Editing the password is not measured: the field was cleared, type it again from the start.", ev);
      }
    });
    input.addEventListener("keyup", (ev) => {
      for (let i = entries.length - 1; i >= 0; i--) {
        if (entries[i].code === ev.code && entries[i].up === null) {
          entries[i].up = ev.timeStamp;
          return;
        }
      }
    });
    for (const kind of ["paste", "drop", "cut"]) {
      input.addEventListener(kind, (ev) =>
        startOver("A pasted password has no typing rhythm: type it with the keyboard.", ev));
    }
    input.addEventListener("compositionstart", () => {
      broken = true;
    });

    // The holds in whole milliseconds, one per character of input.value; throws
    // (and clears the field) if they do not match what is in the field.
    function durations() {
      const typed = entries.map((e) => e.ch).join("");
      if (broken || typed !== input.value || entries.some((e) => e.up === null) || entries.length === 0) {
        reset();
        throw new Error("The key timings do not match the password (was it edited, pasted or typed with an input " +
          "method?). Type it again, key by key.");
      }
      return entries.map((e) => Math.round(e.up - e.down));
    }

    return { durations, reset };
  }

  root.DirbrokerCapture = { attach };
})(globalThis);
