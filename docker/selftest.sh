#!/usr/bin/env bash
# Build the container images, start the compose testbeds and check them from
# the host, then tear everything down (also on failure). For users and CI.
#
#   docker/selftest.sh                       full multi-stage build (compiles dirbroker
#                                            in the image; needs rust:1-bookworm)
#   docker/selftest.sh --prebuilt BIN        runtime stage only, with BIN (a dirbroker
#                                            built on this host, e.g. target/debug/dirbroker)
#   docker/selftest.sh --prebuilt BIN --only single|replicated
#
# Engine: docker when its daemon answers (and `docker compose` exists), else rootful
# podman with podman-compose (installed with apt when missing). Podman runs with a
# containers.conf this script writes and removes (CONTAINERS_CONF): runtime runc
# (crun refuses hybrid cgroups), ulimits nofile 20000 / nproc 32768 (root may lack
# CAP_SYS_RESOURCE), events to a file (no systemd). The Debian base image is made
# with mmdebstrap from the Debian mirror when the engine has none; it stays cached.
#
# Nothing in the checkout is written: compose files and secrets go to a scratch copy.
# Ports (127.0.0.1): DIRBROKER_LDAP_PORT 3389, DIRBROKER_LDAP2_PORT 3390,
# DIRBROKER_HTTPS_PORT 8443, DIRBROKER_HTTPS2_PORT 8444.
# Exit 0 when every check passed; the failing step is named otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."

prebuilt=''
only=''
while (($#)); do
    case $1 in
    --prebuilt) prebuilt=${2:?--prebuilt needs a file}; shift 2 ;;
    --only) only=${2:?--only needs single or replicated}; shift 2 ;;
    -h | --help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "selftest: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
case $only in '' | single | replicated) ;; *) echo "selftest: --only single|replicated" >&2; exit 2 ;; esac
if [[ -n $prebuilt ]]; then
    [[ -x $prebuilt ]] || { echo "selftest: $prebuilt is not an executable" >&2; exit 2; }
    prebuilt=$(realpath "$prebuilt")
fi

export DIRBROKER_LDAP_PORT=${DIRBROKER_LDAP_PORT:-3389} DIRBROKER_LDAP2_PORT=${DIRBROKER_LDAP2_PORT:-3390}
export DIRBROKER_HTTPS_PORT=${DIRBROKER_HTTPS_PORT:-8443} DIRBROKER_HTTPS2_PORT=${DIRBROKER_HTTPS2_PORT:-8444}
BROKER_IMAGE=localhost/dirbroker-broker:testbed
LDAP_IMAGE=localhost/dirbroker-ldap:testbed
BASE_DN=dc=example,dc=org
BROKER_DN=cn=broker,ou=system,$BASE_DN
NODE_DN=cn=node-reader,ou=system,$BASE_DN

t0=$SECONDS
step() { printf '\n== selftest: %s\n' "$*" >&2; }
fail() {
    printf 'selftest: FAILED: %s\n' "$*" >&2
    exit 1
}
elapsed() { echo $((SECONDS - $1)); }

run=$(mktemp -d /tmp/dirbroker-selftest.XXXXXX)
projects=()
cleanup() {
    local rc=$?
    set +e
    if ((rc != 0)); then
        for p in "${projects[@]}"; do
            echo "selftest: logs of $p (last 30 lines each):" >&2
            compose_in "$p" logs --tail 30 >&2 2>&1
        done
    fi
    for p in "${projects[@]}"; do
        compose_in "$p" down -v >/dev/null 2>&1
    done
    rm -rf "$run"
    exit "$rc"
}
trap cleanup EXIT
# Killed (timeout, Ctrl-C): still tear down.
trap "exit 143" TERM
trap "exit 130" INT

# ------------------------------------------------------------------ engine
need_root() { [[ $(id -u) == 0 ]] || fail "podman runs rootful here: run as root (or install docker)"; }
if [[ ${DIRBROKER_ENGINE:-} != podman ]] && command -v docker >/dev/null 2>&1 &&
    timeout 20 docker info >/dev/null 2>&1 && docker compose version >/dev/null 2>&1; then
    engine=docker
    compose_cmd=(docker compose)
else
    engine=podman
    need_root
    missing=()
    for tool in podman:podman runc:runc podman-compose:podman-compose mmdebstrap:mmdebstrap \
        ldapsearch:ldap-utils curl:curl newuidmap:uidmap slirp4netns:slirp4netns \
        iptables:iptables; do
        command -v "${tool%%:*}" >/dev/null 2>&1 || missing+=("${tool#*:}")
    done
    dpkg-query -W -f='${Status}' netavark 2>/dev/null | grep -q 'ok installed' || missing+=(netavark aardvark-dns)
    if ((${#missing[@]})); then
        step "apt-get install ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        timeout 300 apt-get update -qq
        timeout 600 apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
    cat >"$run/containers.conf" <<'EOF'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
    export CONTAINERS_CONF=$run/containers.conf
    compose_cmd=(podman-compose)
fi
step "engine: $engine ($($engine --version | head -1))"

# compose_in PROJECT ARGS…: compose with the scratch copy's file of that project.
compose_in() {
    local p=$1 file=compose.yaml
    shift
    [[ $p == dirbroker-replicated ]] && file=compose.replicated.yaml
    timeout 300 "${compose_cmd[@]}" -p "$p" -f "$run/docker/$file" "$@"
}

# ------------------------------------------------------------------ images
t_images=$SECONDS
base_image=debian:bookworm-slim
[[ $engine == podman ]] && base_image=localhost/debian:bookworm-slim
if ! $engine image inspect "$base_image" >/dev/null 2>&1; then
    step "base image $base_image: mmdebstrap bookworm (minbase) from deb.debian.org"
    command -v mmdebstrap >/dev/null || fail "mmdebstrap is missing: apt-get install mmdebstrap"
    need_root
    timeout 900 mmdebstrap --variant=minbase --mode=root --quiet \
        --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
        --dpkgopt='path-include=/usr/share/doc/*/copyright' --dpkgopt='path-exclude=/usr/share/locale/*' \
        --aptopt='Acquire::Languages "none"' \
        bookworm "$run/bookworm-slim.tar" \
        "deb http://deb.debian.org/debian bookworm main" \
        "deb http://deb.debian.org/debian bookworm-updates main" \
        "deb http://deb.debian.org/debian-security bookworm-security main"
    timeout 300 $engine import --change 'CMD ["bash"]' \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        "$run/bookworm-slim.tar" "$base_image" >/dev/null
    rm -f "$run/bookworm-slim.tar"
else
    step "base image $base_image: cached"
fi
step "LDAP image $LDAP_IMAGE"
timeout 900 $engine build -q -f docker/openldap/Dockerfile -t "$LDAP_IMAGE" . >/dev/null
if [[ -n $prebuilt ]]; then
    step "broker image $BROKER_IMAGE (stage prebuilt, $prebuilt)"
    mkdir -p "$run/host" && cp "$prebuilt" "$run/host/dirbroker"
    timeout 900 $engine build -q -f docker/Dockerfile --target prebuilt --build-context host="$run/host" \
        -t "$BROKER_IMAGE" . >/dev/null
else
    step "broker image $BROKER_IMAGE (multi-stage: compiles dirbroker; minutes)"
    timeout 3600 $engine build -q -f docker/Dockerfile -t "$BROKER_IMAGE" . >/dev/null
fi
images_s=$(elapsed "$t_images")
step "images built in ${images_s} s"

# ------------------------------------------------------------------ scratch copy
mkdir -p "$run/docker/secrets" "$run/docker/openldap"
# podman-compose 1.0 wants each service's Dockerfile present even when its image exists.
cp docker/Dockerfile "$run/docker/"
cp docker/openldap/Dockerfile "$run/docker/openldap/"
cp docker/compose.yaml docker/compose.replicated.yaml docker/dirbroker.toml docker/dirbroker.replicated.toml \
    docker/dirbroker.replicated-2.toml docker/testbed-serve.sh "$run/docker/"
(
    umask 077
    for s in admin_password broker_password node_reader_password replicator_password; do
        head -c 24 /dev/urandom | base64 | tr -d '\n' >"$run/docker/secrets/$s"
    done
    head -c 18 /dev/urandom | base64 | tr -d '\n' >"$run/alice.pw"
)
# The broker runs as 10001 and refuses secret files others may read (docker/README.md).
chown 10001:10001 "$run/docker/secrets/broker_password"
secrets=$run/docker/secrets

# ------------------------------------------------------------------ helpers
# wait_for SECONDS WHAT COMMAND…: run COMMAND every 0.5 s until it succeeds.
wait_for() {
    local limit=$1 what=$2 deadline=$((SECONDS + $1))
    shift 2
    while ((SECONDS < deadline)); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.5
    done
    fail "$what: not within $limit s"
}
healthz() { curl -fsS --max-time 5 --cacert "$run/ca.pem" "https://localhost:$1/healthz"; }
ldap_as() {
    local port=$1 dn=$2 pw=$3
    shift 3
    timeout 20 ldapsearch -x -LLL -o ldif-wrap=no -H "ldap://127.0.0.1:$port" -D "$dn" -y "$pw" "$@"
}
# expect WHAT PATTERN TEXT
expect() { grep -q -- "$2" <<<"$3" || fail "$1: expected /$2/ in: $3"; }
# The CA certificate from a running serve container (for curl --cacert).
fetch_ca() { compose_in "$1" exec -T "$2" cat /var/lib/dirbroker/ca.pem >"$run/ca.pem" && grep -q 'BEGIN CERTIFICATE' "$run/ca.pem"; }

# up PROJECT SERVE WHAT: compose up -d, then the CA certificate from the serve container.
up() {
    projects+=("$1")
    step "$1: compose up -d ($3)"
    compose_in "$1" up -d >"$run/up-$1.log" 2>&1 || { cat "$run/up-$1.log" >&2; fail "compose up ($1)"; }
    wait_for 150 "the CA certificate in $2" fetch_ca "$1" "$2"
}

# ------------------------------------------------------------------ single
single() {
    local p=dirbroker out t_up=$SECONDS
    up "$p" serve "ldap, broker check, serve"
    wait_for 120 "/healthz on 127.0.0.1:$DIRBROKER_HTTPS_PORT" healthz "$DIRBROKER_HTTPS_PORT"
    up_s=$(elapsed "$t_up")
    out=$(healthz "$DIRBROKER_HTTPS_PORT")
    expect "/healthz" '"ldap":"ok"' "$out"
    step "single: testbed up and /healthz answering in ${up_s} s: $out"

    step "single: schema and ACLs over LDAP from the host"
    out=$(ldap_as "$DIRBROKER_LDAP_PORT" "$BROKER_DN" "$secrets/broker_password" -b "$BASE_DN" -s one dn)
    [[ $(grep -c '^dn: ou=' <<<"$out") == 11 ]] || fail "11 organizational units expected: $out"
    out=$(ldap_as "$DIRBROKER_LDAP_PORT" "$BROKER_DN" "$secrets/broker_password" -b cn=Subschema -s base objectClasses)
    expect schema "NAME 'dirbrokerUser'" "$out"
    expect schema "NAME 'ldapPublicKey'" "$out"
    out=$(timeout 20 ldapsearch -x -LLL -H "ldap://127.0.0.1:$DIRBROKER_LDAP_PORT" -b "$BASE_DN" -s sub dn 2>&1 || true)
    grep -q '^dn:' <<<"$out" && fail "ACL: an anonymous search sees entries: $out"
    out=$(ldap_as "$DIRBROKER_LDAP_PORT" "$NODE_DN" "$secrets/node_reader_password" -b "$BROKER_DN" -s base userPassword 2>&1 || true)
    grep -qi '^userPassword' <<<"$out" && fail "ACL: the node identity reads the broker's password hash"

    step "single: dirbroker check, user add, check-password (CLI in a container)"
    out=$(compose_in "$p" run --rm -T broker check 2>&1) || fail "dirbroker check: $out"
    expect check 'ok   schema' "$out"
    compose_in "$p" run --rm -T broker user add alice --name 'Alice Liddell' --password-file - <"$run/alice.pw" \
        >"$run/add.log" 2>&1 || fail "user add: $(cat "$run/add.log")"
    out=$(compose_in "$p" run --rm -T broker user check-password alice --password-file - <"$run/alice.pw" 2>&1) ||
        fail "user check-password: $out"
    out=$(ldap_as "$DIRBROKER_LDAP_PORT" uid=alice,ou=people,$BASE_DN "$run/alice.pw" -b uid=alice,ou=people,$BASE_DN -s base cn)
    expect "alice binds over LDAP" 'cn: Alice Liddell' "$out"

    step "single: restart ldap and serve; the data is kept"
    compose_in "$p" restart ldap serve >/dev/null 2>&1 || fail "compose restart"
    wait_for 120 "/healthz after the restart" healthz "$DIRBROKER_HTTPS_PORT"
    out=$(compose_in "$p" run --rm -T broker user show alice 2>&1) || fail "user show after restart: $out"
    expect "alice after the restart" 'Alice Liddell' "$out"
    compose_in "$p" down -v >/dev/null 2>&1 || fail "compose down -v"
}

# ------------------------------------------------------------------ replicated
replicated() {
    local p=dirbroker-replicated out t_up=$SECONDS
    up "$p" serve1 "ldap1 writer, ldap2 read-only replica, serve1, serve2"
    wait_for 120 "/healthz of serve1" healthz "$DIRBROKER_HTTPS_PORT"
    wait_for 120 "/healthz of serve2" healthz "$DIRBROKER_HTTPS2_PORT"
    up2_s=$(elapsed "$t_up")
    step "replicated: both brokers answer /healthz after ${up2_s} s"

    step "replicated: ldap2 refuses writes; a user added through serve1 is read through serve2"
    printf 'dn: ou=probe,%s\nobjectClass: organizationalUnit\nou: probe\n' "$BASE_DN" >"$run/probe.ldif"
    out=$(timeout 20 ldapadd -x -H "ldap://127.0.0.1:$DIRBROKER_LDAP2_PORT" -D "cn=admin,$BASE_DN" \
        -y "$secrets/admin_password" -f "$run/probe.ldif" 2>&1 || true)
    expect "a write to the read-only replica" 'Server is unwilling to perform\|operation restricted\|(53)' "$out"
    compose_in "$p" exec -T serve1 dirbroker user add bob --name 'Bob Replicated' --password-file - \
        <"$run/alice.pw" >"$run/add2.log" 2>&1 || fail "user add through serve1: $(cat "$run/add2.log")"
    wait_for 30 "bob on ldap2" ldap_as "$DIRBROKER_LDAP2_PORT" uid=bob,ou=people,$BASE_DN "$run/alice.pw" \
        -b uid=bob,ou=people,$BASE_DN -s base cn
    out=$(compose_in "$p" exec -T serve2 dirbroker user show bob 2>&1) || fail "user show through serve2: $out"
    expect "bob through serve2" 'Bob Replicated' "$out"
    out=$(compose_in "$p" exec -T serve2 dirbroker cluster compare 2>&1) || fail "cluster compare: $out"
    compose_in "$p" down -v >/dev/null 2>&1 || fail "compose down -v (replicated)"
}

up_s='-'
up2_s='-'
[[ $only == replicated ]] || single
[[ $only == single ]] || replicated
step "PASSED in $(elapsed "$t0") s (engine $engine; images ${images_s} s; single testbed up ${up_s} s; replicated up ${up2_s} s)"
