# bench/lib.sh: the start every bench shares. Sourced first thing as
#   source "$(dirname "$0")/lib.sh" NAME [PKG…]
# it stops on the first error, moves to the repository root, installs the
# project's system packages and the extra Debian packages named (PKG…),
# makes WORK (a scratch directory /tmp/NAME.*; the bench's own cleanup
# removes it) and names TARGET and BIN (the release `dirbroker`).
#   release ARGS…   builds release targets of the workspace, quietly
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/install-deps.sh >/dev/null
bench_name=$1
shift
for pkg in "$@"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg" >/dev/null
done
TARGET=${CARGO_TARGET_DIR:-$PWD/target}
WORK=$(mktemp -d "/tmp/$bench_name.XXXXXX")
BIN=$TARGET/release/dirbroker
release() { cargo build --release --locked "$@" 2>&1 | tail -1; }
