#!/usr/bin/env bash
# Benchmark: AuthorizedKeysCommand lookups against 10,000 users x 3 keys.
# Measures, in one run on one slapd, the per-call wall time (spawn to exit) of
#   ours:   dirbroker-ssh authorized-keys USER   (the `node` profile; the node binary
#           docs/ssh.md wires into sshd_config)
#   (a)     a shell AuthorizedKeysCommand around ldapsearch | sed | awk
#   (b)     a single bare ldapsearch for the same entry
#   (c)     SSSD's sss_ssh_authorizedkeys USER with a warm cache (Debian's
#           sssd-ldap, configured by `dirbroker node sssd-conf`, in its own
#           mount namespace so the machine's NSS is untouched)
# and, for reference, the same lookup through the full tool
# (`dirbroker ssh authorized-keys`) and the cost of spawning /bin/true.
# All bind as the read-only node identity (the ACLs let no anonymous client
# read people). Prints the figures, last a RESULT line.
#   bench/ssh-keys.sh [USERS] [CALLS]
source "$(dirname "$0")/lib.sh" dbbench time
USERS=${1:-10000}
CALLS=${2:-300}
NODE_BIN=$TARGET/node/dirbroker-ssh
HOLDER=""
cleanup() {
  if [[ -n $HOLDER ]]; then
    nsenter -m -t "$HOLDER" sh -c 'kill $(cat /run/sssd.pid) 2>/dev/null' || true
    kill "$HOLDER" 2>/dev/null || true
  fi
  "$BIN" testbed down --dir "$WORK/bed" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

echo "building release binaries…"
release -p dirbroker-cli --bin dirbroker
cargo build --profile node --locked -p dirbroker-cli --bin dirbroker-ssh 2>&1 | tail -1

"$BIN" testbed up --dir "$WORK/bed" --output json >"$WORK/up.json"
URI=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["uri"])' "$WORK/up.json")
NODE_DN="cn=node-reader,ou=system,dc=example,dc=org"
NODE_PW="$WORK/bed/node-reader.pw"

echo "generating and loading $USERS users x 3 keys…"
python3 - "$USERS" >"$WORK/users.ldif" <<'PY'
import base64, os, random, struct, sys
n = int(sys.argv[1])
rnd = random.Random(42)
def ed25519():
    blob = struct.pack(">I", 11) + b"ssh-ed25519" + struct.pack(">I", 32) + bytes(rnd.getrandbits(8) for _ in range(32))
    return "ssh-ed25519 " + base64.b64encode(blob).decode()
for i in range(n):
    print(f"dn: uid=user{i},ou=people,dc=example,dc=org")
    print("objectClass: inetOrgPerson\nobjectClass: ldapPublicKey\nobjectClass: posixAccount")
    print(f"uid: user{i}\ncn: User {i}\nsn: {i}")
    print(f"uidNumber: {100000 + i}\ngidNumber: 100000\nhomeDirectory: /home/user{i}")
    for k in range(3):
        print(f"sshPublicKey: {ed25519()} user{i}@host{k}")
    print()
PY
start=$(date +%s.%N)
ldapadd -c -x -H "$URI" -D cn=admin,dc=example,dc=org -y "$WORK/bed/admin.pw" -f "$WORK/users.ldif" >/dev/null
echo "loaded in $(python3 -c "print(round($(date +%s.%N) - $start, 1))") s"

echo "starting SSSD in its own mount namespace…"
SS=$WORK/sssd
mkdir -p "$SS/etc" "$SS/db" "$SS/pipes/private" "$SS/mc" "$SS/log"
"$BIN" --config "$WORK/bed/node-reader.toml" node sssd-conf --out "$SS/etc/sssd.conf" >/dev/null
chmod 600 "$SS/etc/sssd.conf"
printf 'passwd: files sss\ngroup: files sss\nshadow: files\nhosts: files\n' >"$SS/nsswitch.conf"
unshare --mount --propagation private -- sh -c "
  mount --bind $SS/nsswitch.conf /etc/nsswitch.conf && mount --bind $SS/etc /etc/sssd &&
  mount --bind $SS/db /var/lib/sss/db && mount --bind $SS/pipes /var/lib/sss/pipes &&
  mount --bind $SS/mc /var/lib/sss/mc && mount --bind $SS/log /var/log/sssd &&
  mount -t tmpfs -o mode=0755 bench-sssd-run /run && exec sleep infinity" &
HOLDER=$!
for _ in $(seq 50); do [[ $(readlink /proc/$HOLDER/ns/mnt) != $(readlink /proc/self/ns/mnt) ]] && break; sleep 0.1; done
nsenter -m -t "$HOLDER" /usr/sbin/sssd -D
for _ in $(seq 150); do nsenter -m -t "$HOLDER" getent passwd user0 >/dev/null 2>&1 && break; sleep 0.2; done
nsenter -m -t "$HOLDER" getent passwd user0 >/dev/null || { echo "SSSD does not see user0" >&2; tail -20 "$SS"/log/*.log >&2; exit 1; }

cat >"$WORK/akc.sh" <<SH
#!/bin/sh
ldapsearch -LLL -x -o ldif-wrap=no -H $URI -D $NODE_DN -y $NODE_PW -b ou=people,dc=example,dc=org \\
  "(&(objectClass=ldapPublicKey)(uid=\$1))" sshPublicKey 2>/dev/null \\
  | sed -n 's/^sshPublicKey: //p' \\
  | awk 'NF >= 2 && \$1 ~ /^(ssh-|ecdsa-|sk-)/'
SH
chmod 755 "$WORK/akc.sh"

# Every variant runs inside the namespace (where SSSD's pipes are), so all pay the same spawn.
nsenter -m -t "$HOLDER" python3 - "$NODE_BIN" "$BIN" "$WORK" "$URI" "$NODE_DN" "$NODE_PW" "$USERS" "$CALLS" <<'PY'
import os, random, shutil, statistics, subprocess, sys, time
node_binary, binary, work, uri, node_dn, node_pw, users, calls = sys.argv[1:9]
users, calls = int(users), int(calls)
cfg = f"{work}/bed/node-reader.toml"
variants = {
    "ours": lambda u: [node_binary, "--config", cfg, "authorized-keys", u],
    "script": lambda u: [f"{work}/akc.sh", u],
    "ldapsearch": lambda u: [shutil.which("ldapsearch"), "-LLL", "-x", "-H", uri, "-D", node_dn, "-y", node_pw,
                             "-b", "ou=people,dc=example,dc=org", f"(uid={u})", "sshPublicKey"],
    "sssd warm": lambda u: ["/usr/bin/sss_ssh_authorizedkeys", u],
    "full tool": lambda u: [binary, "--config", cfg, "ssh", "authorized-keys", u],
    "/bin/true": lambda u: ["/bin/true"],
}
null = os.open(os.devnull, os.O_WRONLY)
to_null = [(os.POSIX_SPAWN_DUP2, null, 1), (os.POSIX_SPAWN_DUP2, null, 2)]
env = dict(os.environ)
def timed(argv):
    # Spawn to exit, stdout and stderr to /dev/null, as sshd runs the command.
    t0 = time.perf_counter()
    pid = os.posix_spawn(argv[0], argv, env, file_actions=to_null)
    _, status = os.waitpid(pid, 0)
    elapsed = (time.perf_counter() - t0) * 1000
    assert os.waitstatus_to_exitcode(status) == 0, argv
    return elapsed
rnd = random.Random(7)
sample = [f"user{rnd.randrange(users)}" for _ in range(calls)]
# Same answer from ours and the script for a few users.
for u in sample[:5]:
    a = subprocess.run(variants["ours"](u), capture_output=True, text=True, check=True).stdout.split("\n")
    b = subprocess.run(variants["script"](u), capture_output=True, text=True, check=True).stdout.split("\n")
    assert sorted(x for x in a if x) == sorted(x for x in b if x), (u, a, b)
    assert len([x for x in a if x]) == 3
    c = subprocess.run(variants["full tool"](u), capture_output=True, text=True, check=True).stdout.split("\n")
    assert sorted(x for x in a if x) == sorted(x for x in c if x), (u, a, c)
    d = subprocess.run(variants["sssd warm"](u), capture_output=True, text=True, check=True).stdout.split("\n")
    assert sorted(x for x in a if x) == sorted(x for x in d if x), (u, a, d)
# SSSD's cache warm for every user looked up (entry_cache_timeout is 5400 s).
for u in set(sample):
    subprocess.run(variants["sssd warm"](u), capture_output=True, check=True)
times = {k: [] for k in variants}
for name in variants:  # warm-up
    for u in sample[:20]:
        timed(variants[name](u))
for u in sample:  # interleaved, so drift hits all alike
    for name, make in variants.items():
        times[name].append(timed(make(u)))
def p(xs, q):
    xs = sorted(xs); return xs[min(len(xs) - 1, int(q * len(xs)))]
for name, xs in times.items():
    print(f"{name:<11} median {statistics.median(xs):6.2f} ms  min {min(xs):6.2f}  p95 {p(xs, .95):6.2f}  ({len(xs)} calls)")
print("(ours = dirbroker-ssh; sssd warm = sss_ssh_authorizedkeys answered from SSSD's cache;")
print(" full tool = dirbroker ssh authorized-keys, same lookup code;")
print(" /bin/true = what spawning any process costs on this machine)")
peak = 0
for u in sample[:20]:  # peak RSS of the command alone (GNU time, not this Python's fork)
    r = subprocess.run(["/usr/bin/time", "-f", "%M"] + variants["ours"](u), capture_output=True, text=True, check=True)
    peak = max(peak, int(r.stderr.strip().splitlines()[-1]))
med = {k: statistics.median(v) for k, v in times.items()}
print(f"peak RSS of ours: {peak} kB")
print(f"RESULT p1_ratio_vs_ldapsearch_script={med['ours']/med['script']:.3f} "
      f"p1_ratio_vs_bare_ldapsearch={med['ours']/med['ldapsearch']:.3f} "
      f"p1_ratio_vs_sssd_warm={med['ours']/med['sssd warm']:.3f} peak_rss_kb={peak}")
PY
