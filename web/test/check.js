// The vector checks shared by node (keystroke.test.js) and Chromium
// (tests/e2e/web.rs loads this into the sign-in page).
"use strict";

(function (root) {
  const K = () => root.DirbrokerKeystroke;
  const S = () => root.DirbrokerSso;

  function errorOf(e) {
    if (!(e instanceof K().KeystrokeError)) throw e;
    const out = { kind: e.kind };
    for (const f of ["chars", "durations", "position", "duration_ms", "gap_ms", "got", "sample"]) {
      if (e[f] !== undefined) out[f] = e[f];
    }
    return out;
  }

  function same(a, b) {
    const norm = (v) => JSON.stringify(v, Object.keys(v).sort());
    return norm(a) === norm(b);
  }

  async function checkVectors(v) {
    const failures = [];
    const counts = { classify: 0, harden: 0, enrol: 0, pw: 0 };
    for (const c of v.classify) {
      let got;
      try {
        const r = K().classify(c.durations);
        got = { durations: c.durations, rhythm: r.rhythm, bits: r.bits };
      } catch (e) {
        got = { durations: c.durations, error: errorOf(e) };
      }
      if (JSON.stringify(got.bits) !== JSON.stringify(c.bits) || got.rhythm !== c.rhythm ||
          (c.error && !same(got.error || {}, c.error))) {
        failures.push({ classify: c, got });
      }
      counts.classify++;
    }
    for (const c of v.harden) {
      let got;
      try {
        got = { hardened: S().hex(await K().harden(c.password, c.durations)) };
      } catch (e) {
        got = { error: errorOf(e) };
      }
      if (got.hardened !== c.hardened || (c.error && !same(got.error || {}, c.error))) failures.push({ harden: c, got });
      counts.harden++;
    }
    for (const c of v.enrol) {
      let got;
      try {
        const r = await K().enrol(c.password, c.samples);
        got = { hardened: S().hex(r.hardened), rhythm: r.rhythm, long_keys: r.longKeys };
      } catch (e) {
        got = { error: errorOf(e) };
      }
      const ok = c.error ? same(got.error || {}, c.error)
        : got.hardened === c.hardened && got.rhythm === c.rhythm && got.long_keys === c.long_keys;
      if (!ok) failures.push({ enrol: c, got });
      counts.enrol++;
    }
    if (S().hex(S().fixed(S().G)) !== v.generator) failures.push({ generator: v.generator });
    for (const c of v.pw) {
      const pw = await S().derivePw(S().unhex(c.input), S().unhex(c.salt), c.kdf);
      const got = { pw: S().hex(S().fixed(pw)), p_c: S().hex(S().fixed(S().gPow(pw))) };
      if (got.pw !== c.pw || got.p_c !== c.p_c) failures.push({ pw: c, got });
      counts.pw++;
    }
    return { counts, failures };
  }

  root.DirbrokerCheck = { checkVectors };
  if (typeof module !== "undefined") module.exports = { checkVectors };
})(globalThis);
