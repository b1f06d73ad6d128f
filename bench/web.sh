#!/usr/bin/env bash
# Browser sign-in wall time: Debian's headless Chromium signs in on /signin
# against a real `dirbroker serve` (slapd, AMS, ANS as in tests/e2e/web.rs),
# N times; per sign-in the page records submit → session cookie (Argon2id in
# WebAssembly, two 2048-bit BigInt exponentiations, the broker's checks) and
# the Argon2id part alone. The KDF is the test site's (the client floor,
# 19 MiB / t=2), and the broker is the debug build the tests use (its share
# is one Schnorr verification, num-bigint optimised in debug too).
# Helper "oidc" adds the token exchange part.
#
#   bench/web.sh [SIGNINS]        default 15
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-15}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
cargo build --offline --workspace --bins -q
DIRBROKER_BENCH_SIGNINS=$N cargo test --offline -q -p dirbroker-tests --test e2e web::bench_web_signin \
  -- --ignored --nocapture --exact >"$out" 2>&1 || { tail -40 "$out" >&2; exit 1; }
grep '^BENCH ' "$out" | sed 's/^BENCH //' | python3 -c '
import json, statistics, sys
r = json.load(sys.stdin)
ms = [x["ms"] for x in r["runs"]]
a2 = [x["argon2Ms"] for x in r["runs"]]
med = statistics.median(ms)
share = statistics.median(a / m for a, m in zip(a2, ms))
k = r["kdf"]
print("sign-ins: %d  Argon2id %s KiB / t=%s / p=%s" % (len(ms), k["m_cost_kib"], k["t_cost"], k["p_cost"]))
print(f"wall ms: median {med:.0f}  min {min(ms):.0f}  max {max(ms):.0f};  Argon2id ms median {statistics.median(a2):.0f}")
print(f"RESULT signin_ms_median={med:.0f} argon2_share={share:.2f}")
'
