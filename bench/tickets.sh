#!/usr/bin/env bash
# Benchmark: SSO tickets (seed 002 stages 3–7).
#  (a) tickets issued per second by the broker's TGS function
#      (TicketIssuer::grant: TGT and authenticator checked, client ticket +
#      server ticket signed and sealed; a TGS answer counts as two tickets)
#      against raw Ed25519 signatures/s in the same run (the faster of
#      aws-lc and ed25519-dalek), in a release example binary;
#  (b) login latency end to end: the real `dirbroker login` (Argon2id at the
#      production 64 MiB / t=3, Schnorr proof, HTTPS, TGT) against the real
#      `dirbroker serve` on the project's slapd; median of N logins, with the
#      client's KDF share.
#   bench/tickets.sh [LOGINS] [RATE_SECS]
source "$(dirname "$0")/lib.sh" dbtix
LOGINS=${1:-20}
export RATE_SECS=${2:-3}
SERVE_PID=
cleanup() {
  if [[ -n $SERVE_PID ]]; then kill "$SERVE_PID" 2>/dev/null || true; wait "$SERVE_PID" 2>/dev/null || true; fi
  "$BIN" testbed down --dir "$WORK/bed" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

echo "building release binaries (fat LTO: a few minutes on 2 cores)…"
release -p dirbroker-cli --bin dirbroker
release -p dirbroker --example sso_user
release -p dirbroker-proto --example ticket_rate

echo "== (a) ticket issuance vs raw Ed25519 signing (${RATE_SECS}s per figure)"
RATE_OUT=$("$TARGET/release/examples/ticket_rate")
echo "$RATE_OUT" | grep -v '^RATIO'
RATIO=$(awk '/^RATIO/ {print $2}' <<<"$RATE_OUT")

echo "== (b) login latency: dirbroker login → dirbroker serve (${LOGINS} logins)"
"$BIN" testbed up --dir "$WORK/bed" >/dev/null
CFG=$WORK/bed/dirbroker.toml
db() { "$BIN" --config "$CFG" "$@"; }
db ca init >/dev/null
db ca issue broker bench-broker --ip 127.0.0.1 --out "$WORK/broker" >/dev/null
db sso init >/dev/null
printf '\n[serve]\nlisten = "127.0.0.1:0"\ncert_file = "%s"\nkey_file = "%s"\n' \
  "$WORK/broker/cert.pem" "$WORK/broker/key.pem" >>"$CFG"
umask 077
printf 'correct horse battery staple\n' >"$WORK/pw"
"$TARGET/release/examples/sso_user" "$CFG" benchuser "$WORK/pw"
DIRBROKER_LOG=warn "$BIN" --config "$CFG" serve >"$WORK/serve.out" 2>"$WORK/serve.log" &
SERVE_PID=$!
for _ in $(seq 100); do grep -q '^listening on' "$WORK/serve.out" 2>/dev/null && break; sleep 0.1; done
ADDR=$(sed -n 's/^listening on //p' "$WORK/serve.out")
[[ -n $ADDR ]] || { cat "$WORK/serve.log" >&2; echo "serve did not start" >&2; exit 1; }
: >"$WORK/times"
for i in $(seq "$LOGINS"); do
  t0=$(date +%s%N)
  out=$("$BIN" --output json login benchuser --broker "https://$ADDR" --ca "$WORK/broker/ca.pem" \
        --password-file "$WORK/pw" --ccache "$WORK/ccache")
  t1=$(date +%s%N)
  kdf=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["timings_ms"]["kdf"])' <<<"$out")
  echo "$(( (t1 - t0) / 1000 )) $kdf" >>"$WORK/times"
done
"$BIN" tickets --ccache "$WORK/ccache" | head -5
python3 - "$WORK/times" "$RATIO" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
wall = [int(a) / 1000 for a, _ in rows]
kdf = [float(b) for _, b in rows]
mw, mk = statistics.median(wall), statistics.median(kdf)
print(f"login wall time (process start to ccache written): median {mw:.0f} ms, min {min(wall):.0f}, max {max(wall):.0f}")
print(f"  of which Argon2id (64 MiB, t=3) in the client: median {mk:.0f} ms = {100*mk/mw:.0f}% of the login")
print(f"RESULT p4_ratio_vs_ed25519_sign={float(sys.argv[2]):.3f} login_ms_median={mw:.0f}")
PY
