#!/usr/bin/env bash
# Run the whole test suite: unit tests and end-to-end tests against real
# slapd (and later sshd, oathtool, openssl, qemu-img) started by the tests.
#   scripts/test.sh [extra cargo test args]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo test --workspace --locked "$@"
