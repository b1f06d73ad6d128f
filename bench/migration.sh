#!/usr/bin/env bash
# Benchmark (issue #7): VM migration with our actors against scp and raw TCP,
# and SPEKE CPU against OpenSSL's ffdh2048, all in the same run.
#
#   (a) a SIZE_MIB image (default 1024) migrated end to end over loopback by
#       the real processes (dirbroker serve, two DC daemons, two PS daemons,
#       `dirbroker migrate`): wall time of the whole migration, OTP check,
#       TLS, SPEKE and TOTP handshakes included; then the same file through
#       `scp -c aes128-gcm@openssh.com` to a private sshd (SFTP), and through
#       `socat` with 128 KiB buffers (the raw loopback TCP limit). Source and
#       destinations are on tmpfs (/dev/shm) for all three, so the disk is
#       not what is measured (its fsync rate is printed for context: our
#       receiver fsyncs before it commits, scp and socat do not).
#   (b) one side of a SPEKE handshake in thread CPU time
#       (proto/examples/speke_cpu.rs; the daemon's steady state, with the
#       peer's password prepared once) against two `openssl speed ffdh2048`
#       operations (CPU time too).
#
#   bench/migration.sh [SIZE_MIB] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MIB=${1:-1024}
ROUNDS=${2:-3}
WORK=$(mktemp -d /tmp/dbmig.XXXXXX)
SHM=$(mktemp -d /dev/shm/dbmig.XXXXXX)
BIN=$PWD/target/release/dirbroker
AGENTS=$PWD/target/release/dirbroker-agents
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  "$BIN" testbed down --dir "$WORK/bed" >/dev/null 2>&1 || true
  rm -rf "$WORK" "$SHM"
}
trap cleanup EXIT

scripts/install-deps.sh >/dev/null
command -v socat >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq socat >/dev/null
echo "building release binaries…"
cargo build --release --locked -p dirbroker-cli --bin dirbroker -p dirbroker-agents --bin dirbroker-agents 2>&1 | tail -1
cargo build --release --locked -p dirbroker-proto --example speke_cpu 2>&1 | tail -1

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# Start a daemon that prints "listening on ADDR" first; sets ADDR.
start() {
  local log=$1; shift
  "$@" >"$log.out" 2>"$log" &
  PIDS+=($!)
  for _ in $(seq 100); do
    if grep -q '^listening on ' "$log.out" 2>/dev/null; then ADDR=$(sed -n 's/^listening on //p' "$log.out"); return; fi
    sleep 0.1
  done
  echo "$* did not start:"; cat "$log" "$log.out"; exit 1
}

# --- the site: slapd, CA, broker, two data centers, two servers, a user --------
"$BIN" testbed up --dir "$WORK/bed" >/dev/null
CFG=$WORK/bed/dirbroker.toml
db() { "$BIN" --config "$CFG" "$@" >/dev/null; }
DCS=$(free_port); DCD=$(free_port); PSS=$(free_port); PSD=$(free_port)
db ca init
db ca issue broker broker-1 --ip 127.0.0.1 --out "$WORK/broker"
db dc add DC-SRC --endpoint "127.0.0.1:$DCS" --out "$WORK/dcs"
db dc add DC-DEST --endpoint "127.0.0.1:$DCD" --out "$WORK/dcd"
db ps add PS-S --dc DC-SRC --endpoint "127.0.0.1:$PSS" --out "$WORK/ps-s.bundle"
db ps add PS-D --dc DC-DEST --endpoint "127.0.0.1:$PSD" --out "$WORK/ps-d.bundle"
db user add admin1 --name 'Admin One' --level 4
db user add bob --name Bob
db psk add k1 --admin admin1 --dc DC-SRC --out "$WORK/k1.bundle"
db psk add speke --dc DC-SRC --dc DC-DEST
SECRET=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ
(umask 077; printf %s "$SECRET" >"$WORK/bob.b32")
db otp import bob --type hotp --secret-file "$WORK/bob.b32" --id bob-hotp
printf '\n[serve]\nlisten = "127.0.0.1:0"\ncert_file = "%s"\nkey_file = "%s"\n' \
  "$WORK/broker/cert.pem" "$WORK/broker/key.pem" >>"$CFG"
mkdir -p "$SHM/src" "$SHM/dest"
export DIRBROKER_LOG=warn
start "$WORK/serve.log" env DIRBROKER_CONFIG="$CFG" "$BIN" serve; BROKER=$ADDR
start "$WORK/ps-s.log" "$AGENTS" ps --bundle "$WORK/ps-s.bundle" --listen "127.0.0.1:$PSS" --images "$SHM/src"
start "$WORK/ps-d.log" "$AGENTS" ps --bundle "$WORK/ps-d.bundle" --listen "127.0.0.1:$PSD" --images "$SHM/dest"
start "$WORK/dc-d.log" "$AGENTS" dc --bundle "$WORK/dcd" --broker "https://$BROKER" --listen "127.0.0.1:$DCD"
start "$WORK/dc-s.log" "$AGENTS" dc --bundle "$WORK/dcs" --broker "https://$BROKER" --listen "127.0.0.1:$DCS"

echo "making a ${SIZE_MIB} MiB image of random bytes…"
head -c "$((SIZE_MIB << 20))" /dev/urandom >"$SHM/src/vm.img"
BYTES=$(stat -c %s "$SHM/src/vm.img")
disk=$(dd if=/dev/zero of="$WORK/dd.tmp" bs=1M count=256 conv=fsync 2>&1 | sed -n 's/.*, \([0-9.]* [MG]B\/s\)$/\1/p'); rm -f "$WORK/dd.tmp"
echo "context: this disk writes ${disk} with fsync (dd, 256 MiB)"

# --- a private sshd with SFTP, for scp ------------------------------------------
mkdir -p /run/sshd; chmod 755 /run/sshd
SSHP=$(free_port)
ssh-keygen -q -t ed25519 -N '' -f "$WORK/hostkey"
ssh-keygen -q -t ed25519 -N '' -f "$WORK/userkey"
cp "$WORK/userkey.pub" "$WORK/authorized_keys"; chmod 600 "$WORK/authorized_keys"
cat >"$WORK/sshd_config" <<CONF
Port $SSHP
ListenAddress 127.0.0.1
HostKey $WORK/hostkey
PidFile $WORK/sshd.pid
AuthorizedKeysFile $WORK/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
Subsystem sftp internal-sftp
CONF
/usr/sbin/sshd -f "$WORK/sshd_config" -E "$WORK/sshd.log"
sleep 0.3
[[ -s $WORK/sshd.pid ]] && PIDS+=("$(cat "$WORK/sshd.pid")")

now() { date +%s.%N; }
rate() { python3 -c "import sys; print(f'{int(sys.argv[1])/(float(sys.argv[3])-float(sys.argv[2]))/1e6:.1f}')" "$BYTES" "$1" "$2"; }

ours=(); scp_r=(); raw=()
for r in $(seq "$ROUNDS"); do
  rm -f "$SHM/dest/vm.img" "$SHM/scp.img" "$SHM/raw.img"
  code=$(oathtool --hotp -b "$SECRET" -c "$((r - 1))")
  t0=$(now)
  echo "$code" | "$BIN" --config "$CFG" migrate vm.img --from DC-SRC --to DC-DEST \
    --source-server PS-S --dest-server PS-D --user bob --k1 "$WORK/k1.bundle" >/dev/null
  t1=$(now)
  cmp -s "$SHM/src/vm.img" "$SHM/dest/vm.img" || { echo "migrated copy differs"; exit 1; }
  rm -f "$SHM/dest/vm.img"
  o=$(rate "$t0" "$t1")

  t0=$(now)
  scp -q -c aes128-gcm@openssh.com -P "$SSHP" -i "$WORK/userkey" -o StrictHostKeyChecking=no \
    -o UserKnownHostsFile=/dev/null "$SHM/src/vm.img" "root@127.0.0.1:$SHM/scp.img"
  t1=$(now)
  s=$(rate "$t0" "$t1")
  rm -f "$SHM/scp.img"

  RP=$(free_port)
  socat -u -b 131072 "TCP-LISTEN:$RP,bind=127.0.0.1,reuseaddr" "OPEN:$SHM/raw.img,creat,trunc" &
  SP=$!
  sleep 0.2
  t0=$(now)
  socat -u -b 131072 "OPEN:$SHM/src/vm.img" "TCP:127.0.0.1:$RP"
  wait "$SP"
  t1=$(now)
  w=$(rate "$t0" "$t1")
  echo "round $r: ours ${o} MB/s   scp ${s} MB/s   socat ${w} MB/s   ($BYTES bytes)"
  ours+=("$o"); scp_r+=("$s"); raw+=("$w")
  # The next round needs the next TOTP step at each server (one session per step).
  [[ $r -lt $ROUNDS ]] && sleep 31
done
grep -h 'MB/s' "$WORK/ps-s.log" "$WORK/ps-d.log" | tail -2 | sed 's/^/  server: /'

echo "SPEKE: one side's CPU, and openssl speed ffdh2048…"
sk=$(target/release/examples/speke_cpu 300)
speke=$(sed -n 's/^speke_side_ms=//p' <<<"$sk")
echo "SPEKE side from scratch $(sed -n 's/^speke_side_unprepared_ms=//p' <<<"$sk") ms; preparing a peer's password once $(sed -n 's/^prepare_once_ms=//p' <<<"$sk") ms"
ffdh=$(openssl speed -seconds 3 ffdh2048 2>/dev/null | awk '/^ *[0-9]+ bits ffdh/ || /ffdh2048/ {v=$NF} END {print v}')
echo "speke side ${speke} ms; openssl ffdh2048 ${ffdh} op/s"

python3 - "${ours[*]}" "${scp_r[*]}" "${raw[*]}" "$speke" "$ffdh" <<'PY'
import statistics, sys
o, s, w = ([float(x) for x in a.split()] for a in sys.argv[1:4])
speke, ffdh = float(sys.argv[4]), float(sys.argv[5])
mo, ms, mw = statistics.median(o), statistics.median(s), statistics.median(w)
two_ffdh_ms = 2 * 1000.0 / ffdh
print(f"median: ours {mo:.0f} MB/s, scp {ms:.0f} MB/s, socat {mw:.0f} MB/s; SPEKE side {speke:.2f} ms vs two ffdh2048 {two_ffdh_ms:.2f} ms")
print(f"RESULT p5_ratio_vs_scp={mo/ms:.2f} p5_ratio_vs_raw_tcp={mo/mw:.2f} p6_speke_ratio_vs_openssl={speke/two_ffdh_ms:.2f}")
PY
