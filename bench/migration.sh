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
#       CPU: user + system seconds of every process of each side, per GB
#       moved (core-seconds per GB): for ours the two server daemons (split
#       into sender and receiver), the broker, both DC daemons, slapd and the
#       `migrate` command; for scp the client (scp and its ssh) and the sshd
#       that serves it (the per-connection processes are reaped by the
#       listening sshd, so its children's time counts); for socat both ends.
#       Daemons are read from /proc/PID/stat (utime + stime + reaped
#       children) before and after; commands run under /usr/bin/time.
#       Then one more migration with the sender's daemon pinned to core 0
#       and the receiver's to core 1 (taskset, every thread), to show what
#       one core per side moves; the rounds before ran on both cores.
#   (b) one side of a SPEKE handshake in thread CPU time
#       (proto/examples/speke_cpu.rs; the daemon's steady state, with the
#       peer's password prepared once) against two `openssl speed ffdh2048`
#       operations (CPU time too).
#
#   bench/migration.sh [SIZE_MIB] [ROUNDS]
source "$(dirname "$0")/lib.sh" dbmig socat time util-linux
SIZE_MIB=${1:-1024}
ROUNDS=${2:-3}
SHM=$(mktemp -d /dev/shm/dbmig.XXXXXX)
AGENTS=$TARGET/release/dirbroker-agents
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  "$BIN" testbed down --dir "$WORK/bed" >/dev/null 2>&1 || true
  rm -rf "$WORK" "$SHM"
}
trap cleanup EXIT

echo "building release binaries…"
release -p dirbroker-cli --bin dirbroker -p dirbroker-agents --bin dirbroker-agents
release -p dirbroker-proto --example speke_cpu

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
# `env` execs the broker, so the pid is the broker's.
CONTROL_PIDS=("${PIDS[-1]}")
start "$WORK/ps-s.log" "$AGENTS" ps --bundle "$WORK/ps-s.bundle" --listen "127.0.0.1:$PSS" --images "$SHM/src"
SENDER_PID=${PIDS[-1]}
start "$WORK/ps-d.log" "$AGENTS" ps --bundle "$WORK/ps-d.bundle" --listen "127.0.0.1:$PSD" --images "$SHM/dest"
RECEIVER_PID=${PIDS[-1]}
start "$WORK/dc-d.log" "$AGENTS" dc --bundle "$WORK/dcd" --broker "https://$BROKER" --listen "127.0.0.1:$DCD"
CONTROL_PIDS+=("${PIDS[-1]}")
start "$WORK/dc-s.log" "$AGENTS" dc --bundle "$WORK/dcs" --broker "https://$BROKER" --listen "127.0.0.1:$DCS"
CONTROL_PIDS+=("${PIDS[-1]}")
if [[ -s $WORK/bed/slapd.pid ]]; then CONTROL_PIDS+=("$(cat "$WORK/bed/slapd.pid")"); else echo "warning: no slapd.pid, slapd's CPU is not counted"; fi

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
TCK=$(getconf CLK_TCK)
# CPU ticks (user + system, reaped children included) of the given live processes so far.
ticks() {
  local total=0 p st f
  for p in "$@"; do
    st=$(cat "/proc/$p/stat" 2>/dev/null) || continue
    read -r -a f <<<"${st##*) }"   # f[0] is field 3 (state): utime..cstime are f[11..14]
    total=$((total + f[11] + f[12] + f[13] + f[14]))
  done
  echo "$total"
}
# Runs a command under /usr/bin/time; appends its user + system seconds to file $1.
timed() { local out=$1; shift; /usr/bin/time -f '%U %S' -a -o "$out" "$@"; }
# Sum of the numbers in a file (the `timed` lines; other lines, like "Command exited…", are skipped).
cpu_file() { awk '/^[0-9.]+ [0-9.]+$/ {s += $1 + $2} END {printf "%.3f", s}' "$1"; }
py() { python3 -c "import sys; a=[float(x) for x in sys.argv[1:]]; print($1)" "${@:2}"; }
GB=$(py 'f"{a[0]/1e9:.6f}"' "$BYTES")
SSHD=$(cat "$WORK/sshd.pid" 2>/dev/null || echo 0)
# The listening sshd reaps a session's processes a moment after the client exits.
sshd_settled() { for _ in $(seq 50); do pgrep -P "$SSHD" >/dev/null || return 0; sleep 0.1; done; }

# The last transfer a server daemon logged ("sending vm.img: N bytes in S s (R MB/s)"): prints "S R".
last_transfer() { grep -h ' MB/s)$' "$1" | tail -1 | sed -n 's/.* in \([0-9.]*\) s (\([0-9]*\) MB\/s)$/\1 \2/p'; }

# One migration; sets o_mbs (whole migration) o_cpu (core-s/GB, every process) o_snd o_rcv o_ctl
# (core-s/GB), o_srate o_rrate (each server's own transfer, MB/s) o_su o_ru (cores busy during it).
HOTP=0
migrate_once() {
  local code t0 t1 s0 r0 c0 s1 r1 c1 cli=$WORK/cli.cpu
  code=$(oathtool --hotp -b "$SECRET" -c "$HOTP"); HOTP=$((HOTP + 1))
  rm -f "$SHM/dest/vm.img" "$cli"
  s0=$(ticks "$SENDER_PID"); r0=$(ticks "$RECEIVER_PID"); c0=$(ticks "${CONTROL_PIDS[@]}")
  t0=$(now)
  echo "$code" | timed "$cli" "$BIN" --config "$CFG" migrate vm.img --from DC-SRC --to DC-DEST \
    --source-server PS-S --dest-server PS-D --user bob --k1 "$WORK/k1.bundle" >/dev/null
  t1=$(now)
  s1=$(ticks "$SENDER_PID"); r1=$(ticks "$RECEIVER_PID"); c1=$(ticks "${CONTROL_PIDS[@]}")
  cmp -s "$SHM/src/vm.img" "$SHM/dest/vm.img" || { echo "migrated copy differs"; exit 1; }
  rm -f "$SHM/dest/vm.img"
  local wall; wall=$(py 'f"{a[1]-a[0]:.6f}"' "$t0" "$t1")
  o_mbs=$(py 'f"{a[0]/a[1]/1e6:.1f}"' "$BYTES" "$wall")
  o_snd=$(py 'f"{(a[1]-a[0])/a[2]/a[3]:.3f}"' "$s0" "$s1" "$TCK" "$GB")
  o_rcv=$(py 'f"{(a[1]-a[0])/a[2]/a[3]:.3f}"' "$r0" "$r1" "$TCK" "$GB")
  o_ctl=$(py 'f"{((a[1]-a[0])/a[2]+a[3])/a[4]:.3f}"' "$c0" "$c1" "$TCK" "$(cpu_file "$cli")" "$GB")
  o_cpu=$(py 'f"{a[0]+a[1]+a[2]:.3f}"' "$o_snd" "$o_rcv" "$o_ctl")
  local s_secs=0 r_secs=0
  o_srate=0; o_rrate=0
  read -r s_secs o_srate < <(last_transfer "$WORK/ps-s.log") || true
  read -r r_secs o_rrate < <(last_transfer "$WORK/ps-d.log") || true
  o_su=$(py 'f"{a[0]*a[1]/max(a[2],0.01):.2f}"' "$o_snd" "$GB" "$s_secs")
  o_ru=$(py 'f"{a[0]*a[1]/max(a[2],0.01):.2f}"' "$o_rcv" "$GB" "$r_secs")
}

ours=(); scp_r=(); raw=(); ours_c=(); scp_c=(); raw_c=(); snd_r=(); rcv_r=()
for r in $(seq "$ROUNDS"); do
  rm -f "$SHM/scp.img" "$SHM/raw.img"
  migrate_once
  echo "round $r: ours  ${o_mbs} MB/s, ${o_cpu} core-s/GB (sender server ${o_snd}, receiver server ${o_rcv}, broker + DCs + slapd + CLI ${o_ctl}); the servers alone: sending ${o_srate} MB/s (cores busy ${o_su}), receiving ${o_rrate} MB/s (${o_ru})"

  h0=$(ticks "$SSHD"); rm -f "$WORK/scp.cpu"
  t0=$(now)
  timed "$WORK/scp.cpu" scp -q -c aes128-gcm@openssh.com -P "$SSHP" -i "$WORK/userkey" -o StrictHostKeyChecking=no \
    -o UserKnownHostsFile=/dev/null "$SHM/src/vm.img" "root@127.0.0.1:$SHM/scp.img"
  t1=$(now)
  sshd_settled; h1=$(ticks "$SSHD")
  cmp -s "$SHM/src/vm.img" "$SHM/scp.img" || { echo "scp copy differs"; exit 1; }
  s=$(py 'f"{a[0]/(a[2]-a[1])/1e6:.1f}"' "$BYTES" "$t0" "$t1")
  sc=$(py 'f"{a[0]/a[1]:.3f}"' "$(cpu_file "$WORK/scp.cpu")" "$GB")
  sd=$(py 'f"{(a[1]-a[0])/a[2]/a[3]:.3f}"' "$h0" "$h1" "$TCK" "$GB")
  s_cpu=$(py 'f"{a[0]+a[1]:.3f}"' "$sc" "$sd")
  echo "round $r: scp   ${s} MB/s, ${s_cpu} core-s/GB (client ${sc}, sshd ${sd})"
  rm -f "$SHM/scp.img"

  RP=$(free_port); rm -f "$WORK/rx.cpu" "$WORK/tx.cpu"
  timed "$WORK/rx.cpu" socat -u -b 131072 "TCP-LISTEN:$RP,bind=127.0.0.1,reuseaddr" "OPEN:$SHM/raw.img,creat,trunc" &
  SP=$!
  sleep 0.2
  t0=$(now)
  timed "$WORK/tx.cpu" socat -u -b 131072 "OPEN:$SHM/src/vm.img" "TCP:127.0.0.1:$RP"
  wait "$SP"
  t1=$(now)
  cmp -s "$SHM/src/vm.img" "$SHM/raw.img" || { echo "socat copy differs"; exit 1; }
  w=$(py 'f"{a[0]/(a[2]-a[1])/1e6:.1f}"' "$BYTES" "$t0" "$t1")
  wt=$(py 'f"{a[0]/a[1]:.3f}"' "$(cpu_file "$WORK/tx.cpu")" "$GB")
  wr=$(py 'f"{a[0]/a[1]:.3f}"' "$(cpu_file "$WORK/rx.cpu")" "$GB")
  w_cpu=$(py 'f"{a[0]+a[1]:.3f}"' "$wt" "$wr")
  echo "round $r: socat ${w} MB/s, ${w_cpu} core-s/GB (sender ${wt}, receiver ${wr})"
  rm -f "$SHM/raw.img"
  snd_r+=("$o_srate"); rcv_r+=("$o_rrate")
  ours+=("$o_mbs"); scp_r+=("$s"); raw+=("$w"); ours_c+=("$o_cpu"); scp_c+=("$s_cpu"); raw_c+=("$w_cpu")
  # The next migration needs the next TOTP step at each server (one session per step).
  sleep 31
done

# --- scaling: one core per side ---------------------------------------------------
# Every thread of each server daemon; threads started later inherit the mask,
# and the stream's worker pool sizes itself from it (one worker).
taskset -a -p -c 0 "$SENDER_PID" >/dev/null
taskset -a -p -c 1 "$RECEIVER_PID" >/dev/null
migrate_once
taskset -a -p -c 0-"$(($(nproc) - 1))" "$SENDER_PID" >/dev/null
taskset -a -p -c 0-"$(($(nproc) - 1))" "$RECEIVER_PID" >/dev/null
echo "pinned, one core per side (sender's server on core 0, receiver's on core 1): the servers alone: sending ${o_srate} MB/s at ${o_snd} core-s/GB (cores busy ${o_su}), receiving ${o_rrate} MB/s at ${o_rcv} core-s/GB (${o_ru}); whole migration ${o_mbs} MB/s"
pin_snd=$o_snd; pin_rcv=$o_rcv; pin_srate=$o_srate; pin_rrate=$o_rrate

echo "SPEKE: one side's CPU, and openssl speed ffdh2048…"
sk=$(target/release/examples/speke_cpu 300)
speke=$(sed -n 's/^speke_side_ms=//p' <<<"$sk")
echo "SPEKE side from scratch $(sed -n 's/^speke_side_unprepared_ms=//p' <<<"$sk") ms; preparing a peer's password once $(sed -n 's/^prepare_once_ms=//p' <<<"$sk") ms"
ffdh=$(openssl speed -seconds 3 ffdh2048 2>/dev/null | awk '/^ *[0-9]+ bits ffdh/ || /ffdh2048/ {v=$NF} END {print v}')
echo "speke side ${speke} ms; openssl ffdh2048 ${ffdh} op/s"

python3 - "${ours[*]}" "${scp_r[*]}" "${raw[*]}" "${ours_c[*]}" "${scp_c[*]}" "${raw_c[*]}" "$speke" "$ffdh" "$pin_snd" "$pin_rcv" "${snd_r[*]}" "${rcv_r[*]}" "$pin_srate" "$pin_rrate" <<'PY'
import statistics, sys
o, s, w, oc, sc, wc = ([float(x) for x in a.split()] for a in sys.argv[1:7])
speke, ffdh, pin_snd, pin_rcv = (float(x) for x in sys.argv[7:11])
snd_r, rcv_r = ([float(x) for x in a.split()] for a in sys.argv[11:13])
pin_srate, pin_rrate = float(sys.argv[13]), float(sys.argv[14])
med = statistics.median
mo, ms, mw = med(o), med(s), med(w)
co, cs, cw = med(oc), med(sc), med(wc)
two_ffdh_ms = 2 * 1000.0 / ffdh
print(f"median: ours {mo:.0f} MB/s {co:.2f} core-s/GB, scp {ms:.0f} MB/s {cs:.2f} core-s/GB, socat {mw:.0f} MB/s {cw:.2f} core-s/GB; SPEKE side {speke:.2f} ms vs two ffdh2048 {two_ffdh_ms:.2f} ms")
print(f"the servers alone (transfer only): sending {med(snd_r):.0f} MB/s, receiving {med(rcv_r):.0f} MB/s on both cores; "
      f"{pin_srate:.0f} and {pin_rrate:.0f} MB/s pinned to one core each")
# 25 Gbit/s = 3.125 GB/s; cores a side needs at the CPU per GB it spent on one core.
print(f"one core per side: the sender's server {1/pin_snd:.2f} GB/s per core, the receiver's {1/pin_rcv:.2f}; "
      f"a 25 Gbit/s link needs {3.125*pin_snd:.1f} cores on the sender and {3.125*pin_rcv:.1f} on the receiver")
print(f"RESULT p5_ratio_vs_scp={mo/ms:.2f} p5_cpu_ratio_vs_scp={co/cs:.2f} p5_ratio_vs_raw_tcp={mo/mw:.2f} p6_speke_ratio_vs_openssl={speke/two_ffdh_ms:.2f}")
PY
