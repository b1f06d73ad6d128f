import os

HERE = os.path.dirname(os.path.abspath(__file__))
ARC = "2.25.78822915458558917601505569801678612125"
INT = "EQUALITY integerMatch ORDERING integerOrderingMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.27"
BOOL = "EQUALITY booleanMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.7"
OCT = "EQUALITY octetStringMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.40"
IA5 = "EQUALITY caseExactIA5Match SUBSTR caseExactIA5SubstringsMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.26"
IA5CI = "EQUALITY caseIgnoreIA5Match SUBSTR caseIgnoreIA5SubstringsMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.26"
TIME = "EQUALITY generalizedTimeMatch ORDERING generalizedTimeOrderingMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.24"
DN = "EQUALITY distinguishedNameMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.12"
S = True
M = False
attrs = [
 (1, "dirbrokerUserLevel", "SSO user level: 1 temporary read-only, 2 normal, 3 all services but admin, 4 administrator", INT, S),
 (2, "dirbrokerAnonymous", "TRUE for a broker-assigned pseudonymous user", BOOL, S),
 (3, "dirbrokerPublicValue", "Public verifier g^x in the RFC 3526 group: P_c of a user, P_k of a Kerberized service (big-endian bytes)", OCT, S),
 (4, "dirbrokerPublicValueTime", "When the public verifier was published: T_c of a user, T_k of a service", TIME, S),
 (5, "dirbrokerKeystrokeHardening", "TRUE when the password of the user is keystroke-duration hardened", BOOL, S),
 (6, "dirbrokerSealedSshPrivateKey", "Escrowed passphrase-protected OpenSSH private key, sealed; readable by its owner only", OCT, S),
 (7, "dirbrokerDisabled", "TRUE when the account, token, host or credential must not be used", BOOL, S),
 (8, "dirbrokerNotBefore", "Not valid before this time", TIME, S),
 (9, "dirbrokerNotAfter", "Not valid after this time", TIME, S),
 (10, "dirbrokerAllowedFrom", "Hosts or address patterns a login may come from (the hosts.equiv of the SSH paper)", IA5CI, M),
 (11, "dirbrokerTokenId", "Unique identifier of an OTP token", IA5, S),
 (12, "dirbrokerTokenOwner", "DN of the user who owns this token", DN, S),
 (13, "dirbrokerTokenType", "OTP token type: hotp, totp or skey", IA5CI, S),
 (14, "dirbrokerOtpAlgorithm", "OTP hash: sha1, sha256, sha512 (HOTP/TOTP) or md5, sha1 (S/KEY)", IA5CI, S),
 (15, "dirbrokerOtpDigits", "Number of OTP digits (6 or 8)", INT, S),
 (16, "dirbrokerOtpPeriod", "TOTP time step in seconds", INT, S),
 (17, "dirbrokerOtpSecret", "OTP token secret, sealed under the broker master key", OCT, S),
 (18, "dirbrokerHotpCounter", "Next HOTP counter value; updated by delete-old/add-new in one modify", INT, S),
 (19, "dirbrokerTotpWatermark", "Last accepted TOTP time step; updated by delete-old/add-new in one modify", INT, S),
 (20, "dirbrokerTotpClockOffset", "Observed TOTP clock drift in time steps", INT, S),
 (21, "dirbrokerOtpFailureCount", "Consecutive failed OTP verifications", INT, S),
 (22, "dirbrokerSkeySeed", "S/KEY seed (RFC 2289)", IA5CI, S),
 (23, "dirbrokerSkeySequence", "S/KEY sequence number of the next expected OTP", INT, S),
 (24, "dirbrokerSkeyLastOtp", "Last accepted S/KEY OTP (64 bits)", OCT, S),
 (25, "dirbrokerDcId", "Data-center identifier (DID)", IA5, S),
 (26, "dirbrokerEndpoint", "Network endpoint host:port", IA5CI, S),
 (27, "dirbrokerServerId", "Physical-server identifier (PID)", IA5, S),
 (28, "dirbrokerDataCenter", "DN of the data center a physical server belongs to", DN, S),
 (29, "dirbrokerServerTotpSecret", "Physical-server TOTP secret shared with its data center, sealed", OCT, S),
 (30, "dirbrokerServiceId", "Kerberized service identifier (ID_k)", IA5, S),
 (31, "dirbrokerAgentRole", "Agent service role: ams or ans", IA5CI, S),
 (32, "dirbrokerSigningKey", "Ed25519 public signing key (32 bytes)", OCT, S),
 (33, "dirbrokerEncryptionKey", "X25519 public encryption key (32 bytes)", OCT, S),
 (34, "dirbrokerPskId", "Pre-shared key identifier", IA5, S),
 (35, "dirbrokerPskParty", "DN of a party holding the pre-shared key", DN, M),
 (36, "dirbrokerPskSecret", "Pre-shared key (K1 between an admin console and a data center), sealed", OCT, S),
 (37, "dirbrokerPasswordKdf", "Salt and parameters of the slow KDF that derives pw from the password", OCT, S),
 (38, "dirbrokerSshPort", "SSH port of a host when not 22", INT, S),
 (39, "dirbrokerMinLevel", "Lowest user level a service admits", INT, S),
 (40, "dirbrokerOtpLookAhead", "Per-token HOTP look-ahead or TOTP skew window, overriding the default", INT, S),
 (41, "dirbrokerInvitation", "One-time SSO registration invitation: version, level, expiry and SHA-256 of the code; consumed by deleting this exact value", OCT, S),
 (42, "dirbrokerOtpLastFailure", "When the last failed OTP verification of this token was counted; the lockout back-off runs from it", TIME, S),
 (43, "dirbrokerOtpVerifier", "Data center (DN) that may verify the OTP codes of this user for a migration; none listed: any enabled data center", DN, M),
 (44, "dirbrokerAllowAnonymous", "TRUE when the broker issues tickets for this service to anonymous (pseudonymous) users", BOOL, S),
 (45, "dirbrokerNextId", "Lowest POSIX id (uidNumber or gidNumber) the allocator may hand out next; updated by delete-old/add-new in one modify", INT, S),
 (46, "dirbrokerOidcClientId", "OpenID Connect relying party (client_id)", IA5, S),
 (47, "dirbrokerOidcRedirectUri", "A redirect URI registered for an OpenID Connect relying party (compared exactly)", IA5, M),
 (48, "dirbrokerOidcSecretHash", "SHA-256 of the client secret of a confidential OpenID Connect relying party", OCT, S),
]
classes = [
 (1, "dirbrokerUser", "AUXILIARY", "A dirbroker user (with inetOrgPerson and ldapPublicKey)", [],
   ["dirbrokerUserLevel", "dirbrokerAnonymous", "dirbrokerPublicValue", "dirbrokerPublicValueTime",
    "dirbrokerPasswordKdf", "dirbrokerKeystrokeHardening", "dirbrokerSealedSshPrivateKey", "dirbrokerDisabled",
    "dirbrokerNotBefore", "dirbrokerNotAfter", "dirbrokerAllowedFrom", "dirbrokerInvitation", "dirbrokerOtpVerifier"]),
 (2, "dirbrokerOtpToken", "STRUCTURAL", "An OTP token: HOTP, TOTP or S/KEY",
   ["dirbrokerTokenId", "dirbrokerTokenOwner", "dirbrokerTokenType"],
   ["description", "dirbrokerOtpAlgorithm", "dirbrokerOtpDigits", "dirbrokerOtpPeriod", "dirbrokerOtpSecret",
    "dirbrokerHotpCounter", "dirbrokerTotpWatermark", "dirbrokerTotpClockOffset", "dirbrokerOtpLookAhead",
    "dirbrokerOtpFailureCount", "dirbrokerSkeySeed", "dirbrokerSkeySequence", "dirbrokerSkeyLastOtp",
    "dirbrokerDisabled", "dirbrokerNotBefore", "dirbrokerNotAfter", "dirbrokerOtpLastFailure"]),
 (3, "dirbrokerHost", "AUXILIARY", "dirbroker settings of a host (with device, ipHost and ldapPublicKey)", [],
   ["dirbrokerAllowedFrom", "dirbrokerSshPort", "dirbrokerDisabled"]),
 (4, "dirbrokerDataCenter", "STRUCTURAL", "A data center taking part in VM migration (with pkiUser)", ["dirbrokerDcId"],
   ["cn", "description", "dirbrokerEndpoint", "dirbrokerDisabled"]),
 (5, "dirbrokerPhysicalServer", "STRUCTURAL", "A physical server of a data center",
   ["dirbrokerServerId", "dirbrokerDataCenter"],
   ["cn", "description", "dirbrokerEndpoint", "dirbrokerServerTotpSecret", "dirbrokerOtpAlgorithm",
    "dirbrokerOtpDigits", "dirbrokerOtpPeriod", "dirbrokerTotpWatermark", "dirbrokerDisabled"]),
 (6, "dirbrokerService", "STRUCTURAL", "A Kerberized service that trusts dirbroker tickets", ["dirbrokerServiceId"],
   ["cn", "description", "dirbrokerEndpoint", "dirbrokerPublicValue", "dirbrokerPublicValueTime",
    "dirbrokerMinLevel", "dirbrokerAllowAnonymous", "dirbrokerDisabled"]),
 (7, "dirbrokerAgent", "STRUCTURAL", "An agent service (AMS or ANS) with its public keys (with pkiUser)",
   ["cn", "dirbrokerAgentRole"],
   ["description", "dirbrokerEndpoint", "dirbrokerSigningKey", "dirbrokerEncryptionKey", "dirbrokerDisabled"]),
 (8, "dirbrokerPreSharedKey", "STRUCTURAL", "A pre-shared key between named parties",
   ["dirbrokerPskId", "dirbrokerPskParty", "dirbrokerPskSecret"],
   ["description", "dirbrokerNotBefore", "dirbrokerNotAfter", "dirbrokerDisabled"]),
 (9, "dirbrokerIdCounter", "STRUCTURAL", "The POSIX id allocator counter (cn=posix-ids under ou=system)",
   ["cn", "dirbrokerNextId"], ["description"]),
 (10, "dirbrokerOidcClient", "STRUCTURAL", "An OpenID Connect relying party (under ou=services)",
   ["dirbrokerOidcClientId"], ["description", "dirbrokerOidcRedirectUri", "dirbrokerOidcSecretHash", "dirbrokerDisabled"]),
]
names = {a[1] for a in attrs}
for c in classes:
    for a in c[4] + c[5]:
        assert a in names or not a.startswith("dirbroker"), a
# A DESC is a quoted string (RFC 4512 qdstring): an apostrophe would end it.
for d in [a[2] for a in attrs] + [c[3] for c in classes]:
    assert "'" not in d and "\\" not in d, d

def attr_def(a):
    n, name, desc, syn, single = a
    return f"( {ARC}.1.{n} NAME '{name}' DESC '{desc}' {syn}{' SINGLE-VALUE' if single else ''} )"

def oc_def(c):
    n, name, kind, desc, must, may = c
    def lst(l):
        return l[0] if len(l) == 1 else "( " + " $ ".join(l) + " )"
    s = f"( {ARC}.2.{n} NAME '{name}' DESC '{desc}' SUP top {kind}"
    if must: s += f" MUST {lst(must)}"
    if may: s += f" MAY {lst(may)}"
    return s + " )"

def fold(prefix, text, width=76):
    # break at spaces, continuation lines start with two spaces (one is the LDIF fold marker)
    words = text.split(" ")
    lines, cur = [], prefix
    for w in words:
        if len(cur) + 1 + len(w) > width and cur.strip():
            lines.append(cur)
            cur = "  " + w
        else:
            cur = cur + (" " if cur and not cur.endswith(" ") else "") + w
    lines.append(cur)
    return "\n".join(lines)

hdr = "# dirbroker LDAP schema. Generated by schema/gen.py from one table; do not edit by hand.\n# OID arc: " + ARC + " (a 2.25 UUID arc, see schema/README.md).\n"
with open(os.path.join(HERE, "dirbroker.ldif"), "w") as f:
    f.write(hdr + "# cn=config form: ldapadd -Y EXTERNAL -H ldapi:/// -f schema/dirbroker.ldif\n")
    f.write("dn: cn=dirbroker,cn=schema,cn=config\nobjectClass: olcSchemaConfig\ncn: dirbroker\n")
    for a in attrs: f.write(fold("olcAttributeTypes: ", attr_def(a)) + "\n")
    for c in classes: f.write(fold("olcObjectClasses: ", oc_def(c)) + "\n")
with open(os.path.join(HERE, "dirbroker.schema"), "w") as f:
    f.write(hdr + "# slapd.conf form: include /path/to/dirbroker.schema (after core, cosine, inetorgperson, nis, openssh-lpk)\n\n")
    for a in attrs: f.write(fold("attributetype ", attr_def(a)).replace("\n  ", "\n\t") + "\n\n")
    for c in classes: f.write(fold("objectclass ", oc_def(c)).replace("\n  ", "\n\t") + "\n\n")
