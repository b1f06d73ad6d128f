#!/usr/bin/env bash
# Run the whole test suite: unit tests and end-to-end tests against real
# slapd, sshd/ssh, oathtool, openssl, qemu-img and PyJWT, and the project's
# own processes (dirbroker, dirbroker-agents) started by the tests.
#   scripts/test.sh [extra cargo test args]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
# The end-to-end tests run every binary of the workspace as its own process;
# `cargo test` alone builds only the binaries of packages with integration
# tests, so build them all first.
cargo build --workspace --locked --bins
cargo test --workspace --locked "$@"
