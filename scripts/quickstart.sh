#!/usr/bin/env bash
# Set everything up and run dirbroker locally: system packages, a release
# build, a private slapd under ./.dirbroker (schema, ACLs, service
# identities, LDAPS with its own CA), and a first user you can log in with.
# Safe to run again.
#   scripts/quickstart.sh
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
data=$root/.dirbroker
bed=$data/testbed

scripts/install-deps.sh
echo "quickstart: building dirbroker (release; the first build takes a few minutes)"
cargo build --release --locked -p dirbroker
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
  dirbroker testbed down --dir $bed        # stop slapd and delete its data
NEXT
