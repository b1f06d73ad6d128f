#!/usr/bin/env bash
# Set everything up and run dirbroker locally: system packages, a release
# build, a private slapd under ./.dirbroker (schema, ACLs, service
# identities, LDAPS with its own CA), a first user you can log in with, the
# broker CA and the broker's HTTPS service (`dirbroker serve`).
# Safe to run again.
#   scripts/quickstart.sh
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
data=$root/.dirbroker
bed=$data/testbed

# Keys, passwords and the service's log live under $data: no one else may
# read them (the log names users and data centers).
mkdir -p "$data" && chmod 0700 "$data"

scripts/install-deps.sh
echo "quickstart: building dirbroker (release; the first build takes a few minutes)"
cargo build --release --locked -p dirbroker-cli -p dirbroker-agents
# The node binary sshd runs has its own small, aborting profile (Cargo.toml).
cargo build --profile node --locked -p dirbroker-cli --bin dirbroker-ssh
bin=$root/target/release/dirbroker

if "$bin" testbed status --dir "$bed" >/dev/null 2>&1; then
  echo "quickstart: the slapd in $bed is already running; keeping it"
else
  "$bin" testbed up --dir "$bed" --tls
fi
export DIRBROKER_CONFIG=$bed/dirbroker.toml
"$bin" check

if "$bin" user show alice >/dev/null 2>&1; then
  echo "quickstart: user alice exists already (password in $data/alice.pw)"
else
  "$bin" user add alice --name "Alice Liddell" --level 2 --generate-password "$data/alice.pw"
fi
"$bin" user check-password alice --password-file "$data/alice.pw"

# The broker CA, a certificate for the broker, and the broker service.
if [[ ! -f $bed/ca.pem ]]; then "$bin" ca init; fi
if [[ ! -d $data/broker ]]; then
  "$bin" ca issue broker broker-1 --dns localhost --ip 127.0.0.1 --out "$data/broker"
fi
if ! grep -q '^\[serve\]' "$DIRBROKER_CONFIG"; then
  printf '\n[serve]\nlisten = "127.0.0.1:0"\ncert_file = "%s"\nkey_file = "%s"\n' \
    "$data/broker/cert.pem" "$data/broker/key.pem" >>"$DIRBROKER_CONFIG"
fi
if [[ -f $data/serve.pid ]] && kill -0 "$(cat "$data/serve.pid")" 2>/dev/null; then
  echo "quickstart: dirbroker serve is already running (pid $(cat "$data/serve.pid"))"
else
  rm -f "$data/serve.out"
  (umask 077 && exec nohup "$bin" serve >"$data/serve.out" 2>"$data/serve.log" </dev/null) &
  echo $! >"$data/serve.pid"
  for _ in $(seq 100); do grep -q '^listening on ' "$data/serve.out" 2>/dev/null && break; sleep 0.1; done
fi
addr=$(sed -n 's/^listening on //p' "$data/serve.out")
[[ -n $addr ]] || { echo "quickstart: dirbroker serve did not start; see $data/serve.log"; exit 1; }
curl -fsS --cacert "$bed/ca.pem" "https://$addr/healthz" && echo

uri=$(sed -n 's/^uris = \["\(.*\)"\]$/\1/p' "$DIRBROKER_CONFIG")
ca=$bed/tls/ca.pem
cat <<NEXT

dirbroker is up. Try:
  export DIRBROKER_CONFIG=$DIRBROKER_CONFIG
  alias dirbroker=$bin
  dirbroker user show alice --output json
  dirbroker user check-password alice --password-file $data/alice.pw
  LDAPTLS_CACERT=$ca ldapwhoami -x -H $uri -D uid=alice,ou=people,dc=example,dc=org -y $data/alice.pw
  dirbroker user add bob --name 'Bob' --generate-password $data/bob.pw
  curl --cacert $bed/ca.pem https://$addr/metrics    # the broker service (log: $data/serve.log)
  kill \$(cat $data/serve.pid)                        # stop the broker service
  dirbroker testbed down --dir $bed        # stop slapd and delete its data
NEXT
