#!/usr/bin/env bash
# Benchmark: import N users (inetOrgPerson + posixAccount + ldapPublicKey, 2
# keys each) into an empty slapd with `dirbroker import`, with `ldapadd -c`
# (same file, same server config: durable writes), and with `slapadd -q`
# into a stopped server (the offline floor). Prints entries/s for each, then
#   RESULT p2_ratio_vs_ldapadd=<x> p2_ratio_vs_slapadd=<y> peak_rss_kb=<z>
#   bench/ldif-import.sh [N] [BATCH]
source "$(dirname "$0")/lib.sh" dbldif time
N=${1:-100000}
BATCH=${2:-900}
cleanup() { for b in ours peer offline; do "$BIN" testbed down --dir "$WORK/$b" >/dev/null 2>&1 || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

echo "building release binary…"
release -p dirbroker-cli --bin dirbroker

echo "generating $N users…"
python3 - "$N" >"$WORK/users.ldif" <<'PY'
import base64, random, struct, sys
n = int(sys.argv[1]); rnd = random.Random(42)
def key():
    blob = struct.pack(">I", 11) + b"ssh-ed25519" + struct.pack(">I", 32) + bytes(rnd.getrandbits(8) for _ in range(32))
    return "ssh-ed25519 " + base64.b64encode(blob).decode()
out = sys.stdout
for i in range(n):
    out.write(f"dn: uid=user{i},ou=people,dc=example,dc=org\nobjectClass: inetOrgPerson\nobjectClass: posixAccount\n"
              f"objectClass: ldapPublicKey\nuid: user{i}\ncn: User {i}\nsn: {i}\nuidNumber: {10000+i}\ngidNumber: 100\n"
              f"homeDirectory: /home/user{i}\nloginShell: /bin/bash\nmail: user{i}@example.org\n"
              f"sshPublicKey: {key()} user{i}@a\nsshPublicKey: {key()} user{i}@b\n\n")
PY
ls -l "$WORK/users.ldif" | awk '{printf "file: %.1f MB\n", $5/1e6}'

count() { ldapsearch -LLL -x -H "$1" -D cn=admin,dc=example,dc=org -y "$2" -b ou=people,dc=example,dc=org -s one '(objectClass=posixAccount)' 1.1 | grep -c '^dn:'; }
uri_of() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["uri"])' "$1"; }
now() { date +%s.%N; }

# ours
"$BIN" testbed up --dir "$WORK/ours" --output json >"$WORK/ours.json"
t0=$(now)
/usr/bin/time -f "%M" -o "$WORK/rss" "$BIN" --config "$WORK/ours/dirbroker.toml" import "$WORK/users.ldif" --batch "$BATCH" >"$WORK/ours.out"
t1=$(now)
ours_n=$(count "$(uri_of "$WORK/ours.json")" "$WORK/ours/admin.pw")
ours_rate=$(python3 -c "print($ours_n / ($t1 - $t0))")
rss=$(cat "$WORK/rss")
echo "dirbroker import: $ours_n entries in $(python3 -c "print(round($t1-$t0,1))") s = $(printf %.0f "$ours_rate") entries/s, peak RSS $rss kB"
"$BIN" testbed down --dir "$WORK/ours" >/dev/null

# ldapadd -c
"$BIN" testbed up --dir "$WORK/peer" --output json >"$WORK/peer.json"
uri=$(uri_of "$WORK/peer.json")
t0=$(now)
ldapadd -c -x -H "$uri" -D cn=admin,dc=example,dc=org -y "$WORK/peer/admin.pw" -f "$WORK/users.ldif" >/dev/null
t1=$(now)
peer_n=$(count "$uri" "$WORK/peer/admin.pw")
peer_rate=$(python3 -c "print($peer_n / ($t1 - $t0))")
echo "ldapadd -c:       $peer_n entries in $(python3 -c "print(round($t1-$t0,1))") s = $(printf %.0f "$peer_rate") entries/s"
"$BIN" testbed down --dir "$WORK/peer" >/dev/null

# slapadd -q into the stopped server
"$BIN" testbed up --dir "$WORK/offline" --output json >"$WORK/off.json"
pid=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["pid"])' "$WORK/off.json")
kill -TERM "$pid"; while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
t0=$(now)
/usr/sbin/slapadd -q -F "$WORK/offline/slapd.d" -b dc=example,dc=org -l "$WORK/users.ldif" >/dev/null 2>&1
t1=$(now)
off_n=$(/usr/sbin/slapcat -F "$WORK/offline/slapd.d" -b dc=example,dc=org -a '(objectClass=posixAccount)' | grep -c '^dn:')
off_rate=$(python3 -c "print($off_n / ($t1 - $t0))")
echo "slapadd -q:       $off_n entries in $(python3 -c "print(round($t1-$t0,1))") s = $(printf %.0f "$off_rate") entries/s"

[[ $ours_n == "$N" && $peer_n == "$N" && $off_n == "$N" ]] || { echo "entry counts differ: $ours_n $peer_n $off_n (want $N)"; exit 1; }
python3 -c "print(f'RESULT p2_ratio_vs_ldapadd={$ours_rate/$peer_rate:.2f} p2_ratio_vs_slapadd={$ours_rate/$off_rate:.3f} peak_rss_kb=$rss')"
