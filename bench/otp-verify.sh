#!/usr/bin/env bash
# Benchmark: OTP verifications per second end to end as `dirbroker serve`
# makes them (token state from its cache, open the sealed secret, check the
# code, one delete-old/add-new LDAP modify guarded by the token's entryCSN)
# on the project's slapd, against a raw ldap3 loop doing the same
# single-modify write on the same server in the same run. Durable writes
# (slapd's default). Also shows the read-then-write rate of the one-shot CLI.
#   bench/otp-verify.sh [N] [ROUNDS]
source "$(dirname "$0")/lib.sh" dbotp
N=${1:-3000}
ROUNDS=${2:-3}
cleanup() { "$BIN" testbed down --dir "$WORK/bed" >/dev/null 2>&1 || true; rm -rf "$WORK"; }
trap cleanup EXIT

echo "building release binaries…"
release -p dirbroker-cli --bin dirbroker
release -p dirbroker --example otp_bench
"$BIN" testbed up --dir "$WORK/bed" >/dev/null

ours=(); raw=()
for r in $(seq "$ROUNDS"); do
  out=$(target/release/examples/otp_bench "$WORK/bed/dirbroker.toml" "$N")
  o=$(awk '{print $2}' <<<"$out"); w=$(awk '{print $4}' <<<"$out"); u=$(awk '{print $6}' <<<"$out")
  echo "round $r: dirbroker otp verify ${o}/s (read-then-write ${u}/s)   raw ldap3 modify ${w}/s   ($N each)"
  ours+=("$o"); raw+=("$w")
  # Fresh user/token each round.
  "$BIN" --config "$WORK/bed/dirbroker.toml" user delete bench >/dev/null
done
python3 - "${ours[*]}" "${raw[*]}" <<'PY'
import statistics, sys
o = [float(x) for x in sys.argv[1].split()]; w = [float(x) for x in sys.argv[2].split()]
mo, mw = statistics.median(o), statistics.median(w)
print(f"median: ours {mo:.0f} verifications/s, raw {mw:.0f} modifies/s")
print(f"RESULT p3_ratio_vs_raw_modify={mo/mw:.3f}")
PY
