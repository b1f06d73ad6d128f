#!/usr/bin/env bash
# Benchmark: the replicated mode (issue #15): 3 slapd providers with one
# writer (testbed/src/cluster.rs) and two brokers' directory layers on them
# (the URI list in two orders), all in one run of
# tests/examples/cluster_bench.rs:
#   - OTP verifications/s through the two brokers (token cache, sealed secret,
#     entryCSN-guarded consume on the writer) against a raw ldap3
#     delete-old/add-new modify on the writer (same run);
#   - user lookup latency on a non-writer;
#   - `dirbroker-ssh authorized-keys` (a new process per call, as sshd runs
#     it; op timeout 1 s) with p1 SIGSTOPped: first and next call, then
#     SIGKILLed;
#   - replication lag (add on the writer, poll p2) p50/p95 idle and while
#     BURST adds run on the writer;
#   - double accepts when the two brokers race the same code on 200 tokens.
# Wall and CPU time (user + system of the driver and its children) at the end.
#   bench/cluster.sh [N_OTP] [BURST]
source "$(dirname "$0")/lib.sh" dbcluster time
N=${1:-2000}
BURST=${2:-5000}
cleanup() { "$BIN" testbed down --dir "$WORK/c" >/dev/null 2>&1 || true; rm -rf "$WORK"; }
trap cleanup EXIT

echo "building release binaries…"
release -p dirbroker-cli --bin dirbroker --bin dirbroker-ssh
release -p dirbroker-tests --example cluster_bench
/usr/bin/time -f "wall_s=%e cpu_user_s=%U cpu_sys_s=%S" -o "$WORK/time" \
  "$TARGET/release/examples/cluster_bench" "$WORK" "$N" "$BURST" | tee "$WORK/out"
cat "$WORK/time"
grep '^RESULT' "$WORK/out" | tail -1
