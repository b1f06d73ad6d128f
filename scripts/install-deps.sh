#!/usr/bin/env bash
# Install the Debian packages dirbroker and its tests use, without leaving a
# system slapd, sshd or sssd running, and without handing the machine's own
# NSS or PAM to SSSD (the tests run SSSD in a private mount namespace:
# testbed/src/harness/sssd.rs). Idempotent: does nothing when all are present.
#   scripts/install-deps.sh
set -euo pipefail

# sssd-ldap, sssd-tools, libnss-sss, libpam-sss: SSSD as a judge in the tests
# (sssd-common, pulled in, has sss_ssh_authorizedkeys); util-linux (Essential)
# has unshare and nsenter. chromium (+ fonts-dejavu-core for readable
# screenshots) runs the sign-in page tests (tests/e2e/web.rs); npm installs the
# page's one npm dependency (web/package-lock.json) that the broker embeds.
PKGS=(slapd ldap-utils openssh-server openssh-client oathtool openssl qemu-utils curl python3-jwt python3-cryptography
  sssd-ldap sssd-tools libnss-sss libpam-sss chromium fonts-dejavu-core)
# Debian's npm only where no npm is on PATH: a Node.js from elsewhere (e.g.
# NodeSource's nodejs, which bundles npm) conflicts with that package.
command -v npm >/dev/null 2>&1 || PKGS+=(npm)

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
  # libnss-sss's postinst adds "sss" to /etc/nsswitch.conf and libpam-sss's
  # runs pam-auth-update: keep the machine's own NSS and PAM as they were.
  nss_saved=$(mktemp)
  cp -p /etc/nsswitch.conf "$nss_saved" 2>/dev/null || : >"$nss_saved"
  echo "install-deps: apt-get install ${missing[*]}"
  if ! { "${SUDO[@]}" apt-get update -qq && "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
    tail -30 "$log" >&2
    echo "install-deps: apt-get failed (full log: $log)" >&2
    exit 1
  fi
  rm -f "$log"
  for p in "${missing[@]}"; do
    if [[ $p == libnss-sss && -s $nss_saved ]] && ! cmp -s "$nss_saved" /etc/nsswitch.conf; then
      echo "install-deps: keeping /etc/nsswitch.conf without sss (the tests use SSSD in their own namespace)"
      "${SUDO[@]}" cp "$nss_saved" /etc/nsswitch.conf
    fi
    if [[ $p == libpam-sss ]] && command -v pam-auth-update >/dev/null 2>&1; then
      "${SUDO[@]}" pam-auth-update --package --remove sss
    fi
  done
  rm -f "$nss_saved"
fi

# Belt and braces: stop a system slapd/sshd/sssd a package may have started.
for svc in slapd ssh sssd; do
  pidfile=/run/$svc.pid; [[ $svc == slapd ]] && pidfile=/run/slapd/slapd.pid
  if [[ -s $pidfile ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    echo "install-deps: stopping system $svc started by its package"
    sudo_cmd=(); [[ $(id -u) -ne 0 ]] && sudo_cmd=(sudo)
    "${sudo_cmd[@]}" kill "$(cat "$pidfile")" || true
  fi
done

command -v cargo >/dev/null 2>&1 || { echo "install-deps: cargo not found; install Rust (rustup) first" >&2; exit 1; }

# The sign-in pages' npm dependency (hash-wasm's Argon2id), exactly as locked;
# broker/build.rs embeds it and stops with a clear error when it is missing.
root=$(cd "$(dirname "$0")/.." && pwd)
if [[ ! -f $root/web/node_modules/hash-wasm/dist/argon2.umd.min.js ]]; then
  echo "install-deps: npm ci in web/"
  (cd "$root/web" && npm ci --ignore-scripts --no-audit --no-fund)
fi
