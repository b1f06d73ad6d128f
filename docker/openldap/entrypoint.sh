#!/usr/bin/env bash
# Entrypoint of the dirbroker OpenLDAP testbed image (docker/openldap/Dockerfile).
#
# First start (empty data directory): the same steps as testbed/src/lib.rs,
#   slapadd -n0 (cn=config) -> slapd on ldapi only -> wait for ldapi
#   -> ldapadd openssh-lpk.ldif, dirbroker.ldif -> ldapmodify acl.ldif, indexes.ldif
#   -> base entries, cn=broker and cn=node-reader (passwords hashed {SSHA512} by slappasswd -T)
#   -> stop that slapd -> exec slapd in the foreground.
# Later starts: exec slapd in the foreground.
#
# Environment (container defaults; override them to run this script outside Docker):
#   LDAP_DATA_DIR         /var/lib/dirbroker-ldap   slapd.d/ (cn=config) and data/ (mdb)
#   LDAP_RUN_DIR          /run/slapd                pid file, args file and the ldapi socket
#   LDAP_URLS             ldap:///                  TCP listeners; the ldapi socket in
#                                                   LDAP_RUN_DIR is always added
#   LDAP_SUFFIX           dc=example,dc=org         used on first start only
#   SECRETS_DIR           /run/secrets              admin_password, broker_password,
#                                                   node_reader_password
#   DIRBROKER_SCHEMA_DIR  /opt/dirbroker/schema     the repository's schema/ files
#   SLAPD_USER, SLAPD_GROUP  openldap               slapd drops to these when started as root
#   LDAP_DEBUG_LEVEL      0                         slapd -d level (0: foreground, quiet)
#
# Replication (docker/compose.replicated.yaml; docs/replication.md), first start only:
#   LDAP_SERVER_ID        (unset)                   1..4095: make this server a provider
#                                                   (syncprov, olcServerID, the replicator's
#                                                   read rule and limits); needs the secret
#                                                   replicator_password
#   LDAP_REPLICATE_FROM   (unset)                   the writer's ldap:// URI: start empty
#                                                   (no base entries or identities), consume
#                                                   everything from it (syncrepl), and refuse
#                                                   client writes (olcReadOnly)
#
# Arguments: a command to run instead (`docker run IMAGE bash`); none: slapd as above.
#
# Secret files may end in one newline (and CR); like dirbroker's own secret
# reader, it is not part of the password. Passwords never appear on a command line.

set -euo pipefail

if (($#)); then
    exec "$@"
fi

readonly STOCK_SCHEMA_DIR=/etc/ldap/schema
readonly MODULE_DIR=/usr/lib/ldap
readonly DATABASE_DN='olcDatabase={1}mdb,cn=config'
readonly ACL_SUFFIX='dc=example,dc=org'
readonly MARKER_NAME=.dirbroker-ldap-provisioned

DATA_DIR=${LDAP_DATA_DIR:-/var/lib/dirbroker-ldap}
RUN_DIR=${LDAP_RUN_DIR:-/run/slapd}
TCP_URLS=${LDAP_URLS:-ldap:///}
SUFFIX=${LDAP_SUFFIX:-dc=example,dc=org}
SECRETS=${SECRETS_DIR:-/run/secrets}
SCHEMA_DIR=${DIRBROKER_SCHEMA_DIR:-/opt/dirbroker/schema}
SLAPD_USER=${SLAPD_USER:-openldap}
SLAPD_GROUP=${SLAPD_GROUP:-openldap}
DEBUG_LEVEL=${LDAP_DEBUG_LEVEL:-0}
SERVER_ID=${LDAP_SERVER_ID:-}
REPLICATE_FROM=${LDAP_REPLICATE_FROM:-}

CONFIG_DIR=$DATA_DIR/slapd.d
DB_DIR=$DATA_DIR/data
MARKER=$DATA_DIR/$MARKER_NAME

log() { printf 'dirbroker-ldap: %s\n' "$*" >&2; }
die() {
    printf 'dirbroker-ldap: error: %s\n' "$*" >&2
    exit 1
}

# ldapi:// URL of a socket path, percent-encoded like testbed::ldapi_url.
ldapi_url() {
    local LC_ALL=C
    local path=$1 out='ldapi://' c i
    for ((i = 0; i < ${#path}; i++)); do
        c=${path:i:1}
        case $c in
        [A-Za-z0-9._~-]) out+=$c ;;
        *) printf -v c '%%%02X' "'$c" && out+=$c ;;
        esac
    done
    printf '%s' "$out"
}

for tool in slapd slapadd slappasswd ldapadd ldapmodify ldapwhoami; do
    command -v "$tool" >/dev/null 2>&1 ||
        die "$tool not found; install the Debian packages: apt-get install slapd ldap-utils"
done

case $DATA_DIR in
/*) ;;
*) die "LDAP_DATA_DIR must be an absolute path, not '$DATA_DIR'" ;;
esac
case $RUN_DIR in
/*) ;;
*) die "LDAP_RUN_DIR must be an absolute path, not '$RUN_DIR'" ;;
esac
# Both end up in cn=config LDIF: keep them plain.
for p in "$DATA_DIR" "$RUN_DIR"; do
    [[ $p =~ ^[A-Za-z0-9._/+@-]+$ ]] ||
        die "'$p' may only contain letters, digits and . _ / + @ -"
done

SOCKET=$RUN_DIR/ldapi
((${#SOCKET} <= 100)) || die "$SOCKET is too long for a unix socket path"
LDAPI=$(ldapi_url "$SOCKET")
URLS="$TCP_URLS $LDAPI/"

MY_UID=$(id -u)
MY_GID=$(id -g)
SLAPD_PRIV=()
if ((MY_UID == 0)); then
    id -u "$SLAPD_USER" >/dev/null 2>&1 || die "user $SLAPD_USER (SLAPD_USER) does not exist"
    getent group "$SLAPD_GROUP" >/dev/null 2>&1 || die "group $SLAPD_GROUP (SLAPD_GROUP) does not exist"
    SLAPD_PRIV=(-u "$SLAPD_USER" -g "$SLAPD_GROUP")
fi

# The run directory: created if missing; a socket or pid file left by a slapd that
# is no longer running (e.g. a restarted container) is removed.
prepare_run_dir() {
    mkdir -p "$RUN_DIR"
    if [[ -f $RUN_DIR/slapd.pid ]]; then
        local pid comm
        pid=$(<"$RUN_DIR/slapd.pid")
        comm=''
        if [[ $pid =~ ^[0-9]+$ && -r /proc/$pid/comm ]]; then
            comm=$(<"/proc/$pid/comm")
        fi
        [[ $comm != slapd ]] || die "a slapd (pid $pid) already runs with $RUN_DIR"
    fi
    rm -f "$RUN_DIR/slapd.pid" "$RUN_DIR/slapd.args" "$SOCKET"
    if ((${#SLAPD_PRIV[@]})); then
        chown "$SLAPD_USER:$SLAPD_GROUP" "$RUN_DIR"
    fi
}

start_foreground() {
    log "starting slapd on $URLS"
    exec slapd -d "$DEBUG_LEVEL" -h "$URLS" -F "$CONFIG_DIR" "${SLAPD_PRIV[@]}"
}

# ---------------------------------------------------------------- later starts
if [[ -e $MARKER ]]; then
    provisioned_suffix=$(<"$MARKER")
    if [[ $provisioned_suffix != "$SUFFIX" ]]; then
        log "warning: LDAP_SUFFIX is '$SUFFIX' but this data was provisioned for '$provisioned_suffix'; LDAP_SUFFIX only applies on first start"
    fi
    prepare_run_dir
    start_foreground
fi

mkdir -p "$DATA_DIR"
existing=$(ls -A -- "$DATA_DIR")
if [[ -n $existing ]]; then
    die "$DATA_DIR is not empty but was not provisioned (did an earlier first start fail or get killed?).
Start again from scratch by removing it; with compose: docker compose -f docker/compose.yaml down -v"
fi

# ----------------------------------------------------------------- first start
# The suffix goes into LDIF, ACLs and sed: accept plain dc=/o= suffixes only.
[[ $SUFFIX =~ ^([Dd][Cc]|[Oo])=([A-Za-z0-9-]+)(,[A-Za-z]+=[A-Za-z0-9-]+)*$ ]] ||
    die "LDAP_SUFFIX '$SUFFIX' is not supported: use dc=... or o=... RDNs of letters, digits and -, without spaces (e.g. dc=example,dc=org)"
top_attr=${BASH_REMATCH[1],,}
top_value=${BASH_REMATCH[2]}
if [[ -n $SERVER_ID ]]; then
    if [[ ! $SERVER_ID =~ ^[1-9][0-9]{0,3}$ ]] || ((SERVER_ID > 4095)); then
        die "LDAP_SERVER_ID '$SERVER_ID' must be a number from 1 to 4095"
    fi
fi
if [[ -n $REPLICATE_FROM ]]; then
    [[ -n $SERVER_ID ]] || die "LDAP_REPLICATE_FROM needs LDAP_SERVER_ID (a number unique among the providers)"
    [[ $REPLICATE_FROM =~ ^ldaps?://[A-Za-z0-9.-]+(:[0-9]+)?/?$ ]] ||
        die "LDAP_REPLICATE_FROM '$REPLICATE_FROM' must be ldap://HOST[:PORT] or ldaps://HOST[:PORT]"
fi

for f in openssh-lpk.ldif dirbroker.ldif acl.ldif indexes.ldif; do
    [[ -r $SCHEMA_DIR/$f ]] || die "$SCHEMA_DIR/$f not found (DIRBROKER_SCHEMA_DIR)"
done
for name in core cosine inetorgperson nis; do
    [[ -r $STOCK_SCHEMA_DIR/$name.ldif ]] || die "$STOCK_SCHEMA_DIR/$name.ldif not found (package slapd)"
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/dirbroker-ldap.XXXXXX")
chmod 700 "$WORK"
BG_PID=''
DONE=0

on_exit() {
    local rc=$?
    if [[ -n $BG_PID ]] && kill -0 "$BG_PID" 2>/dev/null; then
        kill -TERM "$BG_PID" 2>/dev/null || true
        wait "$BG_PID" 2>/dev/null || true
    fi
    if ((!DONE)); then
        if [[ -s $WORK/slapd.log ]]; then
            log "slapd output:"
            sed 's/^/    /' "$WORK/slapd.log" >&2 || true
        fi
        # Undo the half-done first start so the next start begins afresh.
        rm -rf "$CONFIG_DIR" "$DB_DIR"
        log "first start failed; $DATA_DIR was emptied again"
    fi
    rm -rf "$WORK"
    exit "$rc"
}
trap on_exit EXIT
# As PID 1, bash ignores SIGTERM/SIGINT unless trapped (docker stop).
trap 'exit 143' TERM
trap 'exit 130' INT

# Copy a secret to WORK without its trailing newline (and CR), as dirbroker reads it.
load_secret() {
    local name=$1 src=$SECRETS/$1 value=''
    [[ -f $src ]] || die "secret $src is missing; create it as docker/README.md says:
    umask 077; head -c 24 /dev/urandom | base64 | tr -d '\\n' > docker/secrets/$name"
    [[ -r $src ]] || die "secret $src is not readable"
    IFS= read -r -d '' value <"$src" || true
    if [[ $value == *$'\n' ]]; then
        value=${value%$'\n'}
        value=${value%$'\r'}
    fi
    [[ -n $value ]] || die "secret $src is empty"
    (umask 077 && printf '%s' "$value" >"$WORK/$name")
}
load_secret admin_password
load_secret broker_password
load_secret node_reader_password
if [[ -n $SERVER_ID ]]; then
    load_secret replicator_password
fi

log "first start: building cn=config for $SUFFIX in $DATA_DIR"
mkdir -p "$CONFIG_DIR" "$DB_DIR"
chmod 700 "$DATA_DIR" "$CONFIG_DIR" "$DB_DIR"

# Service identities have long random passwords: a salted SHA-512 is enough and
# keeps their binds cheap (every SSH login binds as the node identity). People's
# passwords go through Password Modify and the slow olcPasswordHash below.
service_hash() {
    if [[ -e $MODULE_DIR/pw-sha2.so ]]; then
        slappasswd -o module-path="$MODULE_DIR" -o module-load=pw-sha2 -h '{SSHA512}' -T "$1"
    else
        slappasswd -h '{SSHA}' -T "$1"
    fi
}
root_hash=$(service_hash "$WORK/admin_password")
external="gidNumber=$MY_GID+uidNumber=$MY_UID,cn=peercred,cn=external,cn=auth"
broker_dn="cn=broker,ou=system,$SUFFIX"
node_reader_dn="cn=node-reader,ou=system,$SUFFIX"
modules='olcModuleLoad: back_mdb'
password_hash='{SSHA}'
if [[ -e $MODULE_DIR/argon2.so ]]; then
    modules+=$'\nolcModuleLoad: argon2'
    password_hash='{ARGON2}'
fi
if [[ -e $MODULE_DIR/pw-sha2.so ]]; then
    modules+=$'\nolcModuleLoad: pw-sha2'
fi
replicator_dn="cn=replicator,ou=system,$SUFFIX"
server_id=''
replicator_rule=''
replicator_limit=''
if [[ -n $SERVER_ID ]]; then
    modules+=$'\nolcModuleLoad: syncprov'
    # Each prefixed with a newline: an empty line would end the LDIF entry.
    server_id=$'\n'"olcServerID: $SERVER_ID"
    # The replicator reads everything (before the dirbroker rules) and without a
    # size limit; either missing, replication silently leaves entries out.
    replicator_rule="olcAccess: {0}to * by dn.exact=\"$replicator_dn\" read by * break"
    replicator_limit=$'\n'"olcLimits: {1}dn.exact=\"$replicator_dn\" size=unlimited time=unlimited"
fi

# Mirrors config_ldif() in testbed/src/lib.rs (without TLS).
cat >"$WORK/config.ldif" <<EOF
dn: cn=config
objectClass: olcGlobal
cn: config
olcPidFile: $RUN_DIR/slapd.pid
olcArgsFile: $RUN_DIR/slapd.args
olcLogLevel: none
olcToolThreads: 1$server_id

dn: cn=module{0},cn=config
objectClass: olcModuleList
cn: module{0}
olcModulePath: $MODULE_DIR
$modules

dn: cn=schema,cn=config
objectClass: olcSchemaConfig
cn: schema

include: file://$STOCK_SCHEMA_DIR/core.ldif

include: file://$STOCK_SCHEMA_DIR/cosine.ldif

include: file://$STOCK_SCHEMA_DIR/inetorgperson.ldif

include: file://$STOCK_SCHEMA_DIR/nis.ldif

dn: olcDatabase={-1}frontend,cn=config
objectClass: olcDatabaseConfig
objectClass: olcFrontendConfig
olcDatabase: {-1}frontend
olcPasswordHash: $password_hash
olcSizeLimit: 500
olcAccess: {0}to dn.base="" by * read
olcAccess: {1}to dn.base="cn=subschema" by * read

dn: olcDatabase={0}config,cn=config
objectClass: olcDatabaseConfig
olcDatabase: {0}config
olcRootDN: $external
olcAccess: {0}to * by dn.exact=$external manage by * none

dn: $DATABASE_DN
objectClass: olcDatabaseConfig
objectClass: olcMdbConfig
olcDatabase: {1}mdb
olcSuffix: $SUFFIX
olcRootDN: cn=admin,$SUFFIX
olcRootPW: $root_hash
olcDbDirectory: $DB_DIR
olcDbMaxSize: 2147483648
olcDbIndex: objectClass eq
olcLimits: {0}dn.exact="$broker_dn" size=unlimited time=unlimited$replicator_limit
olcLastMod: TRUE
olcAccess: {0}to * by * none
EOF

slapadd -n0 -F "$CONFIG_DIR" -l "$WORK/config.ldif" >"$WORK/slapadd.log" 2>&1 ||
    die "slapadd of cn=config failed: $(cat "$WORK/slapadd.log")"
if ((${#SLAPD_PRIV[@]})); then
    chown -R "$SLAPD_USER:$SLAPD_GROUP" "$DATA_DIR"
fi

prepare_run_dir
log "starting a provisioning slapd on $LDAPI/ only"
slapd -d 0 -h "$LDAPI/" -F "$CONFIG_DIR" "${SLAPD_PRIV[@]}" </dev/null >"$WORK/slapd.log" 2>&1 &
BG_PID=$!

ready=0
for _ in $(seq 1 150); do
    kill -0 "$BG_PID" 2>/dev/null || die "the provisioning slapd exited"
    if ldapwhoami -Q -Y EXTERNAL -H "$LDAPI" >/dev/null 2>&1; then
        ready=1
        break
    fi
    sleep 0.2
done
((ready)) || die "slapd did not answer on $LDAPI within 30 s"

# Run an ldap tool; on failure show its output and stop.
run_step() {
    local step=$1
    shift
    if ! "$@" >"$WORK/step.log" 2>&1; then
        die "$step failed: $(cat "$WORK/step.log")"
    fi
}
as_root() { run_step "$1" "$2" -Q -Y EXTERNAL -H "$LDAPI" -f "$3"; }
as_admin() { run_step "$1" "$2" -x -H "$LDAPI" -D "cn=admin,$SUFFIX" -y "$WORK/admin_password" "${@:3}"; }

# Schema, ACLs and indexes, as an operator would load them.
log "loading openssh-lpk and dirbroker schema, ACLs, indexes"
as_root "ldapadd openssh-lpk.ldif" ldapadd "$SCHEMA_DIR/openssh-lpk.ldif"
as_root "ldapadd dirbroker.ldif" ldapadd "$SCHEMA_DIR/dirbroker.ldif"
acl_file=$SCHEMA_DIR/acl.ldif
if [[ $SUFFIX != "$ACL_SUFFIX" ]]; then
    acl_file=$WORK/acl.ldif
    sed "s/$ACL_SUFFIX/$SUFFIX/g" "$SCHEMA_DIR/acl.ldif" >"$acl_file"
fi
as_root "ldapmodify acl.ldif" ldapmodify "$acl_file"
as_root "ldapmodify indexes.ldif" ldapmodify "$SCHEMA_DIR/indexes.ldif"

if [[ -n $SERVER_ID ]]; then
    # acl.ldif replaced every olcAccess value: the replicator's rule goes first again.
    log "provider $SERVER_ID: syncprov and the replicator's read rule"
    cat >"$WORK/provider.ldif" <<EOF
dn: $DATABASE_DN
changetype: modify
add: olcAccess
$replicator_rule

dn: olcOverlay=syncprov,$DATABASE_DN
changetype: add
objectClass: olcOverlayConfig
objectClass: olcSyncProvConfig
olcOverlay: syncprov
olcSpCheckpoint: 100 1
olcSpSessionLog: 10000
EOF
    as_root "making this server a provider" ldapmodify "$WORK/provider.ldif"
fi

# The end of a first start: mark the data provisioned, run slapd for good.
finish_first_start() {
    kill -TERM "$BG_PID"
    wait "$BG_PID" || true
    BG_PID=''
    printf '%s\n' "$SUFFIX" >"$MARKER"
    DONE=1
    trap - EXIT TERM INT
    rm -rf "$WORK"
    prepare_run_dir
    start_foreground
}

if [[ -n $REPLICATE_FROM ]]; then
    # Started empty: a second seeded copy would carry other entryUUIDs for the
    # same DNs and replication would wedge. The olcSyncrepl value holds the
    # replicator's password: it goes to ldapmodify in a 0600 file, not in argv.
    log "replica of $REPLICATE_FROM: syncrepl as $replicator_dn, read-only"
    (
        umask 077
        cat >"$WORK/replica.ldif" <<EOF
dn: $DATABASE_DN
changetype: modify
add: olcSyncrepl
olcSyncrepl: rid=001 provider=$REPLICATE_FROM bindmethod=simple binddn="$replicator_dn" credentials=$(<"$WORK/replicator_password") searchbase="$SUFFIX" type=refreshAndPersist retry="1 +" timeout=3 network-timeout=2 keepalive=60:3:10
-
replace: olcMultiProvider
olcMultiProvider: TRUE
-
replace: olcReadOnly
olcReadOnly: TRUE
EOF
    )
    as_root "adding the syncrepl consumer" ldapmodify "$WORK/replica.ldif"
    log "provisioned an empty read-only replica of $SUFFIX"
    finish_first_start
fi

# Base entries and service identities, in the order of Testbed::provision.
log "adding base entries and service identities"
{
    printf 'dn: %s\n' "$SUFFIX"
    if [[ $top_attr == dc ]]; then
        printf 'objectClass: dcObject\nobjectClass: organization\ndc: %s\no: %s\n' "$top_value" "$top_value"
    else
        printf 'objectClass: organization\no: %s\n' "$top_value"
    fi
    for ou in people groups hosts otp datacenters servers services agents psk pki system; do
        printf '\ndn: ou=%s,%s\nobjectClass: organizationalUnit\nou: %s\n' "$ou" "$SUFFIX" "$ou"
    done
} >"$WORK/base.ldif"
as_admin "adding the base entries" ldapadd -f "$WORK/base.ldif"

add_identity() {
    local cn=$1 description=$2 secret=$3 dn="cn=$1,ou=system,$SUFFIX"
    printf 'dn: %s\nobjectClass: applicationProcess\nobjectClass: simpleSecurityObject\ncn: %s\ndescription: %s\nuserPassword: %s\n' \
        "$dn" "$cn" "$description" "$(service_hash "$WORK/$secret")" >"$WORK/$cn.ldif"
    as_admin "adding $dn" ldapadd -f "$WORK/$cn.ldif"
}
add_identity broker "dirbroker broker service identity" broker_password
add_identity node-reader "dirbroker read-only node identity" node_reader_password
if [[ -n $SERVER_ID ]]; then
    add_identity replicator "syncrepl replication identity (reads everything)" replicator_password
fi

log "provisioned $SUFFIX; bind as $broker_dn or $node_reader_dn"
finish_first_start
