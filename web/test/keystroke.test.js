// Checks the page's scripts against web/test/vectors.json (written from the
// Rust code by proto/tests/web_vectors.rs):
//   node web/test/keystroke.test.js          (Debian's nodejs; needs `npm ci` in web/)
// tests/e2e/web.rs runs the same checks in Chromium (web/test/check.js).
"use strict";

const path = require("path");
const fs = require("fs");

globalThis.hashwasm = require(path.join(__dirname, "..", "node_modules", "hash-wasm", "dist", "argon2.umd.min.js"));
require(path.join(__dirname, "..", "keystroke.js"));
require(path.join(__dirname, "..", "sso.js"));
const { checkVectors } = require(path.join(__dirname, "check.js"));

const vectors = JSON.parse(fs.readFileSync(path.join(__dirname, "vectors.json"), "utf8"));
checkVectors(vectors).then((r) => {
  console.log(JSON.stringify(r));
  if (r.failures.length > 0) process.exit(1);
}, (e) => {
  console.error(e);
  process.exit(1);
});
