#!/usr/bin/env bash
# Install the Debian packages dirbroker and its tests use, without leaving a
# system slapd or sshd running. Idempotent: does nothing when all are present.
#   scripts/install-deps.sh
set -euo pipefail

PKGS=(slapd ldap-utils openssh-server openssh-client oathtool openssl qemu-utils curl python3-jwt python3-cryptography)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

if ((${#missing[@]} == 0)); then
  echo "install-deps: all present: ${PKGS[*]}"
else
  SUDO=()
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null 2>&1 || { echo "install-deps: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
    SUDO=(sudo)
  fi
  export DEBIAN_FRONTEND=noninteractive
  # No system database from slapd's postinst; no daemons started by maintainer scripts.
  echo 'slapd slapd/no_configuration boolean true' | "${SUDO[@]}" debconf-set-selections
  policy_added=0
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee /usr/sbin/policy-rc.d >/dev/null
    "${SUDO[@]}" chmod 755 /usr/sbin/policy-rc.d
    policy_added=1
  fi
  cleanup() { if ((policy_added)); then "${SUDO[@]}" rm -f /usr/sbin/policy-rc.d; fi; }
  trap cleanup EXIT
  log=$(mktemp)
  echo "install-deps: apt-get install ${missing[*]}"
  if ! { "${SUDO[@]}" apt-get update -qq && "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
    tail -30 "$log" >&2
    echo "install-deps: apt-get failed (full log: $log)" >&2
    exit 1
  fi
  rm -f "$log"
fi

# Belt and braces: stop a system slapd/sshd a package may have started.
for svc in slapd ssh; do
  pidfile=/run/$svc.pid; [[ $svc == slapd ]] && pidfile=/run/slapd/slapd.pid
  if [[ -s $pidfile ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    echo "install-deps: stopping system $svc started by its package"
    sudo_cmd=(); [[ $(id -u) -ne 0 ]] && sudo_cmd=(sudo)
    "${sudo_cmd[@]}" kill "$(cat "$pidfile")" || true
  fi
done

command -v cargo >/dev/null 2>&1 || { echo "install-deps: cargo not found; install Rust (rustup) first" >&2; exit 1; }
