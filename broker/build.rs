//! The sign-in pages (web/, served by `dirbroker serve`, broker/src/serve/pages.rs)
//! are embedded at compile time, with their one npm dependency, hash-wasm's
//! Argon2id, installed exactly as web/package-lock.json locks it. Stop here
//! with a clear message rather than let `include_bytes!` fail obscurely.

use std::path::Path;

fn main() {
    let web = Path::new(env!("CARGO_MANIFEST_DIR")).join("../web");
    println!("cargo::rerun-if-changed={}", web.display());
    println!("cargo::rerun-if-changed={}", web.join("node_modules/hash-wasm/dist").display());
    let argon2 = web.join("node_modules/hash-wasm/dist/argon2.umd.min.js");
    if !argon2.is_file() {
        println!(
            "cargo::error={} is missing: the sign-in pages embed hash-wasm from npm. Run `npm ci` in web/ \
             (scripts/install-deps.sh does it), then build again.",
            argon2.display()
        );
    }
}
