// The SSO client of seed 002 in the page: what `dirbroker register` and
// `dirbroker login` do (cli/src/register.rs, cli/src/login.rs), with the same
// group, encodings and Argon2id parameters as proto/src/sso/. The password,
// the hardened password and pw never leave this script: the broker gets
// G1 = g^pw1 at registration and a Schnorr proof at sign-in.
//
//   pw   = Argon2id(hardened password, salt; m, t, p; 272 bytes) mod q   (kdf.rs)
//   P_c  = g^pw
//   login: R = g^k, e = H(Lp("pre-auth challenge", P_c, ID_c, R, ts, nonce, ID_k)) mod q,
//          s = k + e·pw mod q                                            (preauth.rs)
//   registration: pw = pw1 + pw2; G1 → broker; open E_c (X25519, HKDF, AES-256-GCM),
//          K = g^r, S_A' = G1·(K + H(M_A))⁻¹ must equal S_A; G2 + binder → ANS (registration.rs)
//
// Argon2id is hash-wasm's (web/package-lock.json), served from the broker;
// big integers are BigInt, hashes/HMAC/HKDF/AES-GCM/X25519 are WebCrypto.
"use strict";

(function (root) {
  const PROTOCOL = "dirbroker-sso-v1";
  const P = BigInt("0x" +
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD1" +
    "29024E088A67CC74020BBEA63B139B22514A08798E3404DD" +
    "EF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245" +
    "E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED" +
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3D" +
    "C2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F" +
    "83655D23DCA3AD961C62F356208552BB9ED529077096966D" +
    "670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B" +
    "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9" +
    "DE2BCBF6955817183995497CEA956AE515D2261898FA0510" +
    "15728E5A8AACAA68FFFFFFFFFFFFFFFF");
  const Q = (P - 1n) / 2n;
  // g = hash_to_element("dirbroker-sso-v1 generator", "RFC 3526 group 14")
  // (primitives.rs); web/test/vectors.json checks this value against Rust.
  const G = BigInt("0x" +
    "64f75395e53ffc3e63f2c18bab5aa096b37fe6c55c9556c32ddf8613b62a5dd9" +
    "03ddf264659d9bac3fb5fc7813d0928e293c0877e2e587d177611fcb9318d645" +
    "23773d7479f9a7c11fbe3e1b957abd16a40d2f25ad40a0b6c27285665c0eee73" +
    "1c819ced4104f42f1ee939d374f132f2e64860baaf225e1e3fcc8a2ee6e5ccaf" +
    "c26b40f0e205e80cec3f1d0e3a3305215f5104fe043716a1028535548808c384" +
    "25cf6c0fa7ff20b3d79cfc90103fc221f846878f231c0bdcfbfec6aad19173c1" +
    "3f14fba4422216f58e258945e7de161e7d436ce5f5b05b71f1459150f908176c" +
    "9531c57d747c04c5b001269a63b8f12b7fed16cc9249ade4082a349e3188193b");
  const ELEMENT_LEN = 256;
  const PW_OUTPUT_LEN = 272;
  const SALT_LEN = 16;
  // The floor a client accepts (KdfParams::MINIMUM) and a ceiling the page's
  // memory can hold.
  const KDF_MIN = { m_cost_kib: 19 * 1024, t_cost: 2 };
  const KDF_MAX_KIB = 1024 * 1024;

  const enc = new TextEncoder();
  const subtle = () => root.crypto.subtle;

  // --- bytes ----------------------------------------------------------------

  function concat(...parts) {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }

  function hex(bytes) {
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function unhex(s) {
    if (s.length % 2 !== 0 || /[^0-9a-f]/i.test(s)) throw new Error("not hex");
    return Uint8Array.from(s.match(/../g) || [], (h) => parseInt(h, 16));
  }

  function b64(bytes) {
    let s = "";
    for (const b of bytes) s += String.fromCharCode(b);
    return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function unb64(s) {
    if (typeof s !== "string" || /[^A-Za-z0-9_-]/.test(s)) throw new Error("the broker sent malformed base64url");
    const bin = atob(s.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((s.length + 3) % 4));
    return Uint8Array.from(bin, (c) => c.charCodeAt(0));
  }

  function random(n) {
    return root.crypto.getRandomValues(new Uint8Array(n));
  }

  // Length-prefixed encoding, primitives.rs `Lp`: u32be(len) ‖ part, and
  // Lp::new(label) starts with the protocol name and the label.
  class Lp {
    constructor(label) {
      this.parts = [];
      if (label !== undefined) this.part(enc.encode(PROTOCOL)).part(enc.encode(label));
    }

    part(p) {
      const len = new Uint8Array(4);
      new DataView(len.buffer).setUint32(0, p.length);
      this.parts.push(len, p);
      return this;
    }

    int(v) {
      const b = new Uint8Array(8);
      new DataView(b.buffer).setBigInt64(0, BigInt(v));
      return this.part(b);
    }

    bytes() {
      return concat(...this.parts);
    }

    hash() {
      return sha256(this.bytes());
    }
  }

  async function sha256(bytes) {
    return new Uint8Array(await subtle().digest("SHA-256", bytes));
  }

  async function hkdf32(ikm, info) {
    const key = await subtle().importKey("raw", ikm, "HKDF", false, ["deriveBits"]);
    const bits = await subtle().deriveBits({ name: "HKDF", hash: "SHA-256", salt: new Uint8Array(0), info }, key, 256);
    return new Uint8Array(bits);
  }

  async function hmac(keyBytes, data) {
    const key = await subtle().importKey("raw", keyBytes, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
    return new Uint8Array(await subtle().sign("HMAC", key, data));
  }

  // --- integers mod p and q -------------------------------------------------

  function toInt(bytes) {
    return bytes.length === 0 ? 0n : BigInt("0x" + hex(bytes));
  }

  function fixed(n, len = ELEMENT_LEN) {
    const s = n.toString(16).padStart(2 * len, "0");
    if (s.length > 2 * len) throw new Error("integer too wide");
    return unhex(s);
  }

  function modpow(base, exp, m) {
    let result = 1n;
    let b = base % m;
    let e = exp;
    while (e > 0n) {
      if (e & 1n) result = (result * b) % m;
      b = (b * b) % m;
      e >>= 1n;
    }
    return result;
  }

  function modinv(a, m) {
    let [r0, r1] = [((a % m) + m) % m, m];
    let [s0, s1] = [1n, 0n];
    while (r1 !== 0n) {
      const qt = r0 / r1;
      [r0, r1] = [r1, r0 - qt * r1];
      [s0, s1] = [s1, s0 - qt * s1];
    }
    if (r0 !== 1n) throw new Error("not invertible");
    return ((s0 % m) + m) % m;
  }

  function gPow(x) {
    return modpow(G, x, P);
  }

  // Uniform in [1, q−1]: |q| + 128 random bits, reduced (Scalar::random).
  function randomScalar() {
    for (;;) {
      const v = toInt(random(ELEMENT_LEN + 16)) % Q;
      if (v !== 0n) return v;
    }
  }

  // A subgroup element from the wire (Group::decode): width, range, Jacobi = 1 ⇔ v^q = 1.
  function decodeElement(bytes) {
    if (bytes.length !== ELEMENT_LEN) throw new Error("the broker sent a malformed group element");
    const v = toInt(bytes);
    if (v < 2n || v > P - 2n || modpow(v, Q, P) !== 1n) throw new Error("the broker sent a value outside the group");
    return v;
  }

  // --- pw -------------------------------------------------------------------

  function checkKdf(kdf) {
    const ok = (x) => Number.isInteger(x) && x >= 1;
    if (!kdf || !ok(kdf.m_cost_kib) || !ok(kdf.t_cost) || !ok(kdf.p_cost)) {
      throw new Error("the broker sent no usable password KDF parameters");
    }
    if (kdf.m_cost_kib < KDF_MIN.m_cost_kib || kdf.t_cost < KDF_MIN.t_cost) {
      throw new Error(`the broker asks for Argon2id ${kdf.m_cost_kib} KiB / t=${kdf.t_cost}, below the minimum ` +
        "(19 MiB / t=2); refusing, since your password would be cheap to attack");
    }
    if (kdf.m_cost_kib > KDF_MAX_KIB || kdf.p_cost > 16 || kdf.t_cost > 64) {
      throw new Error("the broker asks for more Argon2id memory or time than a page can spend");
    }
  }

  // pw = Argon2id(input, salt) mod q (kdf.rs derive_pw).
  async function derivePw(input, salt, kdf) {
    const out = await root.hashwasm.argon2id({
      password: input,
      salt,
      parallelism: kdf.p_cost,
      iterations: kdf.t_cost,
      memorySize: kdf.m_cost_kib,
      hashLength: PW_OUTPUT_LEN,
      outputType: "binary",
    });
    const pw = toInt(out) % Q;
    out.fill(0);
    if (pw === 0n) throw new Error("derived pw is zero mod q");
    return pw;
  }

  // --- network --------------------------------------------------------------

  // JSON to/from the broker that served the page; a refusal becomes an Error
  // with the broker's message (shown with textContent, never as HTML).
  async function call(method, path, body) {
    const init = { method, headers: { Accept: "application/json" }, credentials: "same-origin" };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const resp = await fetch(path, init);
    const text = await resp.text();
    let json = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch (_) {
      json = null;
    }
    if (!resp.ok) {
      const msg = json && typeof json.error === "string" ? json.error : `the broker answered ${resp.status}`;
      const err = new Error(msg);
      err.status = resp.status;
      throw err;
    }
    return json;
  }

  // --- sign-in (stage 4a's request) -----------------------------------------

  // GET /v1/sso/params/{uid}: the user's salt and KDF, and the broker's issuer name.
  async function loginParams(uid) {
    const p = await call("GET", `/v1/sso/params/${encodeURIComponent(uid)}`);
    if (!p || !p.kdf || p.kdf.alg !== "argon2id" || typeof p.issuer !== "string") {
      throw new Error("the broker names an unknown password KDF");
    }
    checkKdf(p.kdf);
    return { salt: unb64(p.kdf.salt), kdf: p.kdf, issuer: p.issuer };
  }

  // The Schnorr proof of pw (preauth.rs prove_pw) for `service`.
  async function prove(pw, pC, uid, service, now) {
    const k = randomScalar();
    const r = fixed(gPow(k));
    const nonce = random(16);
    const h = await new Lp("pre-auth challenge")
      .part(fixed(pC)).part(enc.encode(uid)).part(r).int(now).part(nonce).part(enc.encode(service)).hash();
    const e = toInt(h) % Q;
    if (e === 0n) throw new Error("challenge is zero");
    const s = (k + e * pw) % Q;
    return { id_c: uid, service, timestamp: now, nonce: b64(nonce), r: b64(r), s: b64(fixed(s)) };
  }

  // The body of /v1/sso/login and /web/login: { proof, otp? }. Returns the
  // body and the milliseconds Argon2id took.
  async function loginBody(uid, input, otp) {
    const p = await loginParams(uid);
    const t0 = performance.now();
    const pw = await derivePw(input, p.salt, p.kdf);
    const argon2Ms = performance.now() - t0;
    const proof = await prove(pw, gPow(pw), uid, p.issuer, Math.floor(Date.now() / 1000));
    const body = { proof };
    if (otp) body.otp = otp;
    return { body, argon2Ms };
  }

  // --- registration (pre-stage, stages 1–2) ---------------------------------

  // Opens E_c (primitives.rs X25519KeyPair::open): X25519 with the box's
  // ephemeral key, HKDF(info = Lp("ecies", label, epk, our public)), AES-256-GCM
  // with the all-zero nonce and aad Lp(label, aad).
  async function openBox(keyPair, ourPublic, label, aad, sealed) {
    const epk = unb64(sealed.epk);
    if (epk.length !== 32) throw new Error("the broker sent a malformed sealed box");
    const peer = await subtle().importKey("raw", epk, { name: "X25519" }, false, []);
    const shared = new Uint8Array(await subtle().deriveBits({ name: "X25519", public: peer }, keyPair.privateKey, 256));
    if (shared.every((b) => b === 0)) throw new Error("the broker sent a low-order key");
    const info = new Lp("ecies").part(enc.encode(label)).part(epk).part(ourPublic).bytes();
    const key = await subtle().importKey("raw", await hkdf32(shared, info), "AES-GCM", false, ["decrypt"]);
    const additionalData = new Lp(label).part(aad).bytes();
    try {
      return new Uint8Array(await subtle().decrypt({ name: "AES-GCM", iv: new Uint8Array(12), additionalData }, key,
        unb64(sealed.ct)));
    } catch (_) {
      throw new Error("E_c does not open: the registration was tampered with");
    }
  }

  function sealedBytes(sealed) {
    return new Lp().part(unb64(sealed.epk)).part(unb64(sealed.ct)).bytes();
  }

  // The whole registration with an invitation code. `progress(text)` is told
  // each step. Resolves to the Published record, checked to be g^pw.
  async function register(uid, input, invitation, progress) {
    progress("Asking the broker for its password parameters…");
    const params = await call("GET", "/v1/sso/params");
    checkKdf(params && params.kdf);
    const kdf = params.kdf;
    const salt = random(SALT_LEN);
    progress("Deriving your key from the password (Argon2id)…");
    const pw = await derivePw(input, salt, kdf);
    const pw1 = randomScalar();
    const pw2 = (pw - pw1 + Q) % Q;
    if (pw2 === 0n) throw new Error("pw2 is zero");
    const g1 = fixed(gPow(pw1));
    const g2 = fixed(gPow(pw2));
    const keyPair = await subtle().generateKey({ name: "X25519" }, false, ["deriveBits"]);
    const ourPublic = new Uint8Array(await subtle().exportKey("raw", keyPair.publicKey));
    progress("Registering with the broker…");
    const reply = await call("POST", "/v1/sso/register", {
      registration: { id_c: uid, salt: b64(salt), kdf, g1: b64(g1), client_box_key: b64(ourPublic) },
      invitation,
      keystroke_hardening: true,
    });
    const agent = reply && reply.agent;
    if (!agent || !agent.e_c || !agent.m_code || typeof reply.state !== "string") {
      throw new Error("the broker's answer is malformed");
    }
    // receive_agent: open E_c, recompute S_A from our own G1.
    const registrationId = unb64(agent.registration_id);
    const mCode = sealedBytes(agent.m_code);
    const opened = await openBox(keyPair, ourPublic, "E_c", new Lp().part(registrationId).part(mCode).bytes(),
      agent.e_c);
    if (opened.length !== ELEMENT_LEN + 32) throw new Error("E_c has the wrong length");
    const r = toInt(opened.subarray(0, ELEMENT_LEN));
    const hMa = opened.subarray(ELEMENT_LEN);
    if (r === 0n || r >= Q) throw new Error("E_c holds an invalid r");
    const k = fixed(gPow(r));
    const h = toInt(await new Lp("H(M_A)").part(hMa).hash());
    const sum = (toInt(k) + h) % P;
    if (sum === 0n) throw new Error("S_A is undefined");
    const sA = fixed((toInt(g1) * modinv(sum, P)) % P);
    if (hex(sA) !== hex(unb64(agent.s_a))) {
      throw new Error("S_A does not match our own G1: the AMS or the broker lied; nothing was sent to ANS. " +
        "Report this to your administrator");
    }
    const binderKey = await hkdf32(k, new Lp("share binder key").bytes());
    const binder = await hmac(binderKey,
      new Lp("ShareToAns").part(registrationId).part(enc.encode(uid)).part(g2).part(mCode).bytes());
    progress("Sending the second share to ANS…");
    const published = await call("POST", "/web/register/share", {
      share: { registration_id: agent.registration_id, id_c: uid, g2: b64(g2), binder: b64(binder) },
      state: reply.state,
    });
    if (!published || published.id_c !== uid || published.p_c !== b64(fixed(gPow(pw))) || published.salt !== b64(salt)) {
      throw new Error("the published P_c is not g^pw for this password: the broker or ANS misbehaved");
    }
    return published;
  }

  const api = { loginBody, register, call, derivePw, gPow, fixed, hex, unhex, G, P, Q, decodeElement };
  root.DirbrokerSso = api;
  if (typeof module !== "undefined") module.exports = api;
})(globalThis);
