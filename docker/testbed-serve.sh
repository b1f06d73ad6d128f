#!/usr/bin/env bash
# Entrypoint of the compose testbeds' `serve` containers (mounted, not in the
# image): on the first start the broker's keyring, CA and TLS certificate are
# made in the state volume, then `dirbroker serve` runs. Every command waits
# for slapd itself ([directory] start_wait_s).
#
#   TESTBED_INIT=1 (default)  make what is missing, then serve
#   TESTBED_INIT=0            wait until another container sharing the volume made
#                             them (one keyring and one CA per site), then serve
#   TESTBED_CERT_DNS          DNS names for the broker certificate (default "serve localhost")
set -euo pipefail

state=/var/lib/dirbroker
ready=$state/.testbed-ready

if [[ ${TESTBED_INIT:-1} == 1 ]]; then
    [[ -s $state/master.keys ]] || dirbroker secrets init
    [[ -s $state/ca.pem ]] || dirbroker ca init
    if [[ ! -s $state/broker/cert.pem ]]; then
        dns=()
        for name in ${TESTBED_CERT_DNS:-serve localhost}; do dns+=(--dns "$name"); done
        dirbroker ca issue broker broker "${dns[@]}" --ip 127.0.0.1 --out "$state/broker"
    fi
    : >"$ready"
else
    for _ in $(seq 1 240); do
        [[ -e $ready ]] && break
        sleep 0.5
    done
    [[ -e $ready ]] || {
        echo "testbed-serve: $state was not set up within 120 s (is the TESTBED_INIT=1 container running?)" >&2
        exit 1
    }
fi
exec dirbroker serve
