// Keystroke-duration hardening (seed 004), the page's copy of
// proto/src/keystroke.rs: classify(), enrol() and harden() with the same rules,
// the same bounds and the same hashed encoding. web/test/vectors.json (written
// and checked by proto/tests/web_vectors.rs against the Rust code) proves both
// give the same answers: web/test/keystroke.test.js runs them under node, and
// tests/e2e/web.rs runs them in Chromium.
//
// Durations are whole milliseconds (the page rounds event.timeStamp holds).
// All arithmetic is on integers, as in Rust: T_i > T_a is N·T_i > ΣT, and
// T_i > T_t is 2·T_i > min(upper) + max(lower).
"use strict";

(function (root) {
  const EVEN_TYPING_SPREAD_MS = 100;
  const AMBIGUITY_GAP_MS = 100;
  const MIN_DURATION_MS = 1;
  const MAX_DURATION_MS = 10000;
  const MAX_PASSWORD_CHARS = 1024;
  const MIN_ENROL_SAMPLES = 2;
  const MAX_ENROL_SAMPLES = 10;
  const DOMAIN_TAG = "dirbroker keystroke-hardened password v1";

  // Errors carry the Rust variant's name and fields (snake_case, as serde would).
  class KeystrokeError extends Error {
    constructor(kind, fields, message) {
      super(message);
      this.kind = kind;
      Object.assign(this, fields);
    }
  }

  function fail(kind, fields, message) {
    throw new KeystrokeError(kind, fields, message);
  }

  // Unicode scalar values, as Rust's str::chars().
  function chars(password) {
    return Array.from(password);
  }

  // { rhythm: "even" | "pattern", bits: [0|1, …] }, or throws a KeystrokeError.
  function classify(durations) {
    const n = durations.length;
    if (n === 0) fail("no_durations", {}, "no key durations were measured; type the password again");
    if (n > MAX_PASSWORD_CHARS) fail("password_too_long", { chars: n }, "the password is too long");
    let min = Infinity;
    let max = 0;
    let sum = 0;
    durations.forEach((d, i) => {
      if (!Number.isInteger(d) || d < MIN_DURATION_MS || d > MAX_DURATION_MS) {
        fail("duration_out_of_range", { position: i + 1, duration_ms: d },
          `key ${i + 1} was held for ${d} ms; type the password again`);
      }
      min = Math.min(min, d);
      max = Math.max(max, d);
      sum += d; // ≤ 1024 · 10 000: exact in a double
    });
    if (max - min <= EVEN_TYPING_SPREAD_MS) return { rhythm: "even", bits: durations.map(() => 0) };
    const aboveMean = (d) => d * n > sum;
    const upper = durations.filter(aboveMean);
    const lower = durations.filter((d) => !aboveMean(d));
    const minUpper = Math.min(...upper);
    const maxLower = Math.max(...lower);
    const gap = minUpper - maxLower;
    if (gap <= AMBIGUITY_GAP_MS) {
      fail("ambiguous", { gap_ms: gap },
        "your long and short keys were too close to tell apart; type the password again, holding the long keys clearly longer");
    }
    const twiceThreshold = minUpper + maxLower;
    return { rhythm: "pattern", bits: durations.map((d) => (2 * d > twiceThreshold ? 1 : 0)) };
  }

  function checkLengths(password, durations) {
    const n = chars(password).length;
    if (n === 0) fail("empty_password", {}, "the password is empty");
    if (n > MAX_PASSWORD_CHARS) fail("password_too_long", { chars: n }, "the password is too long");
    if (n !== durations.length) {
      fail("length_mismatch", { chars: n, durations: durations.length },
        "the key timings do not match the password; type the password again");
    }
  }

  // SHA-256(DOMAIN_TAG ‖ u32be(N) ‖ (u32be(char) ‖ u8(bit))*): the message.
  function encoding(password, bits) {
    const cs = chars(password);
    const tag = new TextEncoder().encode(DOMAIN_TAG);
    const out = new Uint8Array(tag.length + 4 + 5 * cs.length);
    const view = new DataView(out.buffer);
    out.set(tag, 0);
    view.setUint32(tag.length, cs.length);
    cs.forEach((c, i) => {
      const at = tag.length + 4 + 5 * i;
      view.setUint32(at, c.codePointAt(0));
      out[at + 4] = bits[i];
    });
    return out;
  }

  async function sha256(bytes) {
    return new Uint8Array(await root.crypto.subtle.digest("SHA-256", bytes));
  }

  // The 32-byte hardened password for one typing.
  async function harden(password, durations) {
    checkLengths(password, durations);
    const c = classify(durations);
    return sha256(encoding(password, c.bits));
  }

  // Several typings that must classify alike: { hardened, rhythm, keys, longKeys }.
  async function enrol(password, samples) {
    if (samples.length < MIN_ENROL_SAMPLES || samples.length > MAX_ENROL_SAMPLES) {
      fail("sample_count", { got: samples.length }, `enrolment needs ${MIN_ENROL_SAMPLES} to ${MAX_ENROL_SAMPLES} typings`);
    }
    let first = null;
    samples.forEach((durations, i) => {
      checkLengths(password, durations);
      const c = classify(durations);
      if (first === null) {
        first = c;
      } else if (c.bits.length !== first.bits.length || c.bits.some((b, j) => b !== first.bits[j])) {
        fail("samples_disagree", { sample: i + 1 },
          `typing ${i + 1} did not hold the same keys long as typing 1; type all of them again`);
      }
    });
    return {
      hardened: await sha256(encoding(password, first.bits)),
      rhythm: first.rhythm,
      keys: first.bits.length,
      longKeys: first.bits.reduce((a, b) => a + b, 0),
    };
  }

  const api = { classify, harden, enrol, KeystrokeError, EVEN_TYPING_SPREAD_MS, AMBIGUITY_GAP_MS };
  root.DirbrokerKeystroke = api;
  if (typeof module !== "undefined") module.exports = api;
})(globalThis);
