//! Typed directory entries: one struct per kind of entry the mission needs,
//! each with its DN rule and its conversion to and from LDAP attributes.
//! The meaning of every attribute is in docs/directory.md.

use std::fmt;

use time::OffsetDateTime;

use crate::directory::values::{bool_value, generalized_time, int_value};
use crate::directory::{Attrs, DirError, Directory, Dn, Entry, Layout, Result};

/// A secret sealed under the broker master key before it reaches LDAP. The
/// bytes are opaque here; the sealing format belongs to the secrets module.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed(pub Vec<u8>);

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sealed(<{} bytes>)", self.0.len())
    }
}

/// A kind of entry dirbroker stores.
pub trait DirEntry: Sized {
    /// `objectClass` values written when the entry is created.
    const OBJECT_CLASSES: &'static [&'static str];
    /// The class every entry of this kind has (used in search filters).
    const KIND_CLASS: &'static str;
    /// The naming attribute, under the kind's container.
    const RDN_ATTR: &'static str;

    /// The container of this kind of entry.
    fn container(layout: &Layout) -> &Dn;
    /// The value of the naming attribute.
    fn rdn_value(&self) -> &str;
    fn to_attrs(&self) -> Attrs;
    fn from_entry(entry: &Entry) -> Result<Self>;

    fn dn(&self, layout: &Layout) -> Result<Dn> {
        Self::dn_for(layout, self.rdn_value())
    }

    fn dn_for(layout: &Layout, id: &str) -> Result<Dn> {
        Self::container(layout).child(Self::RDN_ATTR, id)
    }
}

/// Collects attribute values for an add, skipping absent optional ones.
#[derive(Default)]
struct AttrsBuilder(Attrs);

impl AttrsBuilder {
    fn classes(classes: &[&str]) -> Self {
        let mut b = AttrsBuilder::default();
        b.many("objectClass", classes.iter().map(|c| c.as_bytes().to_vec()));
        b
    }
    fn bytes(&mut self, name: &str, v: Vec<u8>) {
        self.0.push((name.to_string(), vec![v]));
    }
    fn str(&mut self, name: &str, v: &str) {
        self.bytes(name, v.as_bytes().to_vec());
    }
    fn opt_str(&mut self, name: &str, v: Option<&str>) {
        if let Some(v) = v {
            self.str(name, v);
        }
    }
    fn opt_bytes(&mut self, name: &str, v: Option<&[u8]>) {
        if let Some(v) = v {
            self.bytes(name, v.to_vec());
        }
    }
    fn opt_int(&mut self, name: &str, v: Option<i64>) {
        if let Some(v) = v {
            self.bytes(name, int_value(v));
        }
    }
    fn opt_time(&mut self, name: &str, v: Option<OffsetDateTime>) {
        if let Some(v) = v {
            self.bytes(name, generalized_time(v));
        }
    }
    /// BOOLEAN written only when TRUE: absent means FALSE.
    fn flag(&mut self, name: &str, v: bool) {
        if v {
            self.bytes(name, bool_value(true));
        }
    }
    fn many(&mut self, name: &str, vs: impl IntoIterator<Item = Vec<u8>>) {
        let vs: Vec<Vec<u8>> = vs.into_iter().collect();
        if !vs.is_empty() {
            self.0.push((name.to_string(), vs));
        }
    }
    fn strs(&mut self, name: &str, vs: &[String]) {
        self.many(name, vs.iter().map(|s| s.as_bytes().to_vec()));
    }
    fn dns(&mut self, name: &str, vs: &[Dn]) {
        self.many(name, vs.iter().map(|d| d.as_str().as_bytes().to_vec()));
    }
    fn done(self) -> Attrs {
        self.0
    }
}

fn owned(v: Option<&str>) -> Option<String> {
    v.map(str::to_string)
}

/// Values of a multi-valued attribute. LDAP values are a set: order is not
/// kept by the server, so they come back sorted for stable output.
fn strings(e: &Entry, attr: &str) -> Result<Vec<String>> {
    let mut v: Vec<String> = e.strs(attr)?.into_iter().map(str::to_string).collect();
    v.sort();
    Ok(v)
}

fn sealed(e: &Entry, attr: &str) -> Result<Option<Sealed>> {
    Ok(e.bytes(attr)?.map(|b| Sealed(b.to_vec())))
}

fn flag(e: &Entry, attr: &str) -> Result<bool> {
    Ok(e.bool(attr)?.unwrap_or(false))
}

/// `userCertificate;binary` as stored; slapd may return it with or without the option.
fn certificate(e: &Entry) -> Result<Option<Vec<u8>>> {
    let v = match e.bytes("userCertificate;binary")? {
        Some(v) => Some(v),
        None => e.bytes("userCertificate")?,
    };
    Ok(v.map(<[u8]>::to_vec))
}

fn small_int<T: TryFrom<i64>>(e: &Entry, attr: &str, what: &str) -> Result<Option<T>> {
    e.int(attr)?
        .map(|i| {
            T::try_from(i).map_err(|_| DirError::MalformedEntry {
                dn: e.dn.to_string(),
                attr: attr.to_string(),
                reason: format!("{i} is out of range for {what}"),
            })
        })
        .transpose()
}

/// SSO user level (seed 002): what a user may do at Kerberized services.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub enum UserLevel {
    /// 1: temporary user, read-only.
    Temporary = 1,
    /// 2: normal user.
    Normal = 2,
    /// 3: every service but administration.
    Power = 3,
    /// 4: administrator.
    Admin = 4,
}

impl UserLevel {
    pub fn from_number(n: i64) -> Option<UserLevel> {
        match n {
            1 => Some(UserLevel::Temporary),
            2 => Some(UserLevel::Normal),
            3 => Some(UserLevel::Power),
            4 => Some(UserLevel::Admin),
            _ => None,
        }
    }

    pub fn number(self) -> i64 {
        self as i64
    }
}

/// POSIX account data, when the user has a Unix login.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Posix {
    pub uid_number: u32,
    pub gid_number: u32,
    pub home_directory: String,
    pub login_shell: Option<String>,
}

/// A person (or a broker-assigned anonymous identity).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub uid: String,
    /// Full name (`cn`).
    pub cn: String,
    /// Surname (`sn`, required by inetOrgPerson).
    pub sn: String,
    pub mail: Option<String>,
    pub level: UserLevel,
    pub anonymous: bool,
    pub disabled: bool,
    pub not_after: Option<OffsetDateTime>,
    pub posix: Option<Posix>,
    /// `sshPublicKey` values, authorized_keys lines.
    pub ssh_public_keys: Vec<String>,
    /// `dirbrokerAllowedFrom`: hosts a login may come from.
    pub allowed_from: Vec<String>,
    /// P_c = g^pw (seed 002) and T_c.
    pub public_value: Option<Vec<u8>>,
    pub public_value_time: Option<OffsetDateTime>,
    pub password_kdf: Option<Vec<u8>>,
    pub keystroke_hardening: bool,
    pub sealed_ssh_private_key: Option<Sealed>,
}

impl User {
    /// A new normal-level user; `uid` and `cn` are checked as DN/attribute input.
    pub fn new(uid: &str, cn: &str) -> Result<User> {
        crate::directory::dn::check_value("uid", uid)?;
        crate::directory::dn::check_value("name", cn)?;
        let sn = cn.rsplit(' ').next().filter(|s| !s.is_empty()).unwrap_or(cn).to_string();
        Ok(User {
            uid: uid.to_string(),
            cn: cn.to_string(),
            sn,
            mail: None,
            level: UserLevel::Normal,
            anonymous: false,
            disabled: false,
            not_after: None,
            posix: None,
            ssh_public_keys: Vec::new(),
            allowed_from: Vec::new(),
            public_value: None,
            public_value_time: None,
            password_kdf: None,
            keystroke_hardening: false,
            sealed_ssh_private_key: None,
        })
    }
}

impl DirEntry for User {
    const OBJECT_CLASSES: &'static [&'static str] = &["inetOrgPerson", "ldapPublicKey", "dirbrokerUser"];
    const KIND_CLASS: &'static str = "inetOrgPerson";
    const RDN_ATTR: &'static str = "uid";

    fn container(layout: &Layout) -> &Dn {
        &layout.people
    }
    fn rdn_value(&self) -> &str {
        &self.uid
    }

    fn to_attrs(&self) -> Attrs {
        let mut classes = Self::OBJECT_CLASSES.to_vec();
        if self.posix.is_some() {
            classes.push("posixAccount");
        }
        let mut b = AttrsBuilder::classes(&classes);
        b.str("uid", &self.uid);
        b.str("cn", &self.cn);
        b.str("sn", &self.sn);
        b.opt_str("mail", self.mail.as_deref());
        b.bytes("dirbrokerUserLevel", int_value(self.level.number()));
        b.flag("dirbrokerAnonymous", self.anonymous);
        b.flag("dirbrokerDisabled", self.disabled);
        b.opt_time("dirbrokerNotAfter", self.not_after);
        if let Some(p) = &self.posix {
            b.bytes("uidNumber", int_value(p.uid_number.into()));
            b.bytes("gidNumber", int_value(p.gid_number.into()));
            b.str("homeDirectory", &p.home_directory);
            b.opt_str("loginShell", p.login_shell.as_deref());
        }
        b.strs("sshPublicKey", &self.ssh_public_keys);
        b.strs("dirbrokerAllowedFrom", &self.allowed_from);
        b.opt_bytes("dirbrokerPublicValue", self.public_value.as_deref());
        b.opt_time("dirbrokerPublicValueTime", self.public_value_time);
        b.opt_bytes("dirbrokerPasswordKdf", self.password_kdf.as_deref());
        b.flag("dirbrokerKeystrokeHardening", self.keystroke_hardening);
        b.opt_bytes("dirbrokerSealedSshPrivateKey", self.sealed_ssh_private_key.as_ref().map(|s| s.0.as_slice()));
        b.done()
    }

    fn from_entry(e: &Entry) -> Result<User> {
        let level = match e.int("dirbrokerUserLevel")? {
            None => UserLevel::Normal,
            Some(n) => UserLevel::from_number(n).ok_or_else(|| DirError::MalformedEntry {
                dn: e.dn.to_string(),
                attr: "dirbrokerUserLevel".into(),
                reason: format!("{n} is not a level from 1 to 4"),
            })?,
        };
        let posix = if e.has_class("posixAccount") {
            Some(Posix {
                uid_number: small_int(e, "uidNumber", "a uid number")?.unwrap_or_default(),
                gid_number: small_int(e, "gidNumber", "a gid number")?.unwrap_or_default(),
                home_directory: e.required_str("homeDirectory")?.to_string(),
                login_shell: owned(e.str("loginShell")?),
            })
        } else {
            None
        };
        // cn and sn may hold several values in entries other tools wrote; take the first.
        let first = |attr: &str| -> Result<String> {
            e.strs(attr)?.first().map(|s| s.to_string()).ok_or_else(|| DirError::MalformedEntry {
                dn: e.dn.to_string(),
                attr: attr.to_string(),
                reason: "missing".into(),
            })
        };
        let uid = first("uid")?;
        Ok(User {
            cn: first("cn").unwrap_or_else(|_| uid.clone()),
            uid,
            sn: first("sn").unwrap_or_default(),
            mail: e.strs("mail")?.first().map(|s| s.to_string()),
            level,
            anonymous: flag(e, "dirbrokerAnonymous")?,
            disabled: flag(e, "dirbrokerDisabled")?,
            not_after: e.time("dirbrokerNotAfter")?,
            posix,
            ssh_public_keys: strings(e, "sshPublicKey")?,
            allowed_from: strings(e, "dirbrokerAllowedFrom")?,
            public_value: e.bytes("dirbrokerPublicValue")?.map(<[u8]>::to_vec),
            public_value_time: e.time("dirbrokerPublicValueTime")?,
            password_kdf: e.bytes("dirbrokerPasswordKdf")?.map(<[u8]>::to_vec),
            keystroke_hardening: flag(e, "dirbrokerKeystrokeHardening")?,
            sealed_ssh_private_key: sealed(e, "dirbrokerSealedSshPrivateKey")?,
        })
    }
}

/// OTP token type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenType {
    Hotp,
    Totp,
    Skey,
}

impl TokenType {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenType::Hotp => "hotp",
            TokenType::Totp => "totp",
            TokenType::Skey => "skey",
        }
    }

    pub fn parse(s: &str) -> Option<TokenType> {
        match s.to_ascii_lowercase().as_str() {
            "hotp" => Some(TokenType::Hotp),
            "totp" => Some(TokenType::Totp),
            "skey" => Some(TokenType::Skey),
            _ => None,
        }
    }
}

/// An OTP token (mirrors OATH-LDAP / FreeIPA token semantics).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OtpToken {
    pub id: String,
    pub owner: Dn,
    pub kind: TokenType,
    pub description: Option<String>,
    pub algorithm: Option<String>,
    pub digits: Option<u8>,
    pub period: Option<u32>,
    pub secret: Option<Sealed>,
    /// HOTP: next counter value.
    pub hotp_counter: Option<i64>,
    /// TOTP: last accepted time step.
    pub totp_watermark: Option<i64>,
    pub clock_offset: Option<i64>,
    pub look_ahead: Option<u32>,
    pub failure_count: i64,
    pub skey_seed: Option<String>,
    pub skey_sequence: Option<i64>,
    pub skey_last_otp: Option<Vec<u8>>,
    pub disabled: bool,
    pub not_before: Option<OffsetDateTime>,
    pub not_after: Option<OffsetDateTime>,
}

impl OtpToken {
    pub fn new(id: &str, owner: Dn, kind: TokenType) -> Result<OtpToken> {
        crate::directory::dn::check_value("token id", id)?;
        Ok(OtpToken {
            id: id.to_string(),
            owner,
            kind,
            description: None,
            algorithm: None,
            digits: None,
            period: None,
            secret: None,
            hotp_counter: None,
            totp_watermark: None,
            clock_offset: None,
            look_ahead: None,
            failure_count: 0,
            skey_seed: None,
            skey_sequence: None,
            skey_last_otp: None,
            disabled: false,
            not_before: None,
            not_after: None,
        })
    }
}

impl DirEntry for OtpToken {
    const OBJECT_CLASSES: &'static [&'static str] = &["dirbrokerOtpToken"];
    const KIND_CLASS: &'static str = "dirbrokerOtpToken";
    const RDN_ATTR: &'static str = "dirbrokerTokenId";

    fn container(layout: &Layout) -> &Dn {
        &layout.otp
    }
    fn rdn_value(&self) -> &str {
        &self.id
    }

    fn to_attrs(&self) -> Attrs {
        let mut b = AttrsBuilder::classes(Self::OBJECT_CLASSES);
        b.str("dirbrokerTokenId", &self.id);
        b.str("dirbrokerTokenOwner", self.owner.as_str());
        b.str("dirbrokerTokenType", self.kind.as_str());
        b.opt_str("description", self.description.as_deref());
        b.opt_str("dirbrokerOtpAlgorithm", self.algorithm.as_deref());
        b.opt_int("dirbrokerOtpDigits", self.digits.map(i64::from));
        b.opt_int("dirbrokerOtpPeriod", self.period.map(i64::from));
        b.opt_bytes("dirbrokerOtpSecret", self.secret.as_ref().map(|s| s.0.as_slice()));
        b.opt_int("dirbrokerHotpCounter", self.hotp_counter);
        b.opt_int("dirbrokerTotpWatermark", self.totp_watermark);
        b.opt_int("dirbrokerTotpClockOffset", self.clock_offset);
        b.opt_int("dirbrokerOtpLookAhead", self.look_ahead.map(i64::from));
        b.bytes("dirbrokerOtpFailureCount", int_value(self.failure_count));
        b.opt_str("dirbrokerSkeySeed", self.skey_seed.as_deref());
        b.opt_int("dirbrokerSkeySequence", self.skey_sequence);
        b.opt_bytes("dirbrokerSkeyLastOtp", self.skey_last_otp.as_deref());
        b.flag("dirbrokerDisabled", self.disabled);
        b.opt_time("dirbrokerNotBefore", self.not_before);
        b.opt_time("dirbrokerNotAfter", self.not_after);
        b.done()
    }

    fn from_entry(e: &Entry) -> Result<OtpToken> {
        let kind_text = e.required_str("dirbrokerTokenType")?;
        let kind = TokenType::parse(kind_text).ok_or_else(|| DirError::MalformedEntry {
            dn: e.dn.to_string(),
            attr: "dirbrokerTokenType".into(),
            reason: format!("{kind_text:?} is not hotp, totp or skey"),
        })?;
        Ok(OtpToken {
            id: e.required_str("dirbrokerTokenId")?.to_string(),
            owner: e.dn_value("dirbrokerTokenOwner")?.ok_or_else(|| DirError::MalformedEntry {
                dn: e.dn.to_string(),
                attr: "dirbrokerTokenOwner".into(),
                reason: "missing".into(),
            })?,
            kind,
            description: owned(e.str("description")?),
            algorithm: owned(e.str("dirbrokerOtpAlgorithm")?),
            digits: small_int(e, "dirbrokerOtpDigits", "a digit count")?,
            period: small_int(e, "dirbrokerOtpPeriod", "a period")?,
            secret: sealed(e, "dirbrokerOtpSecret")?,
            hotp_counter: e.int("dirbrokerHotpCounter")?,
            totp_watermark: e.int("dirbrokerTotpWatermark")?,
            clock_offset: e.int("dirbrokerTotpClockOffset")?,
            look_ahead: small_int(e, "dirbrokerOtpLookAhead", "a window")?,
            failure_count: e.int("dirbrokerOtpFailureCount")?.unwrap_or(0),
            skey_seed: owned(e.str("dirbrokerSkeySeed")?),
            skey_sequence: e.int("dirbrokerSkeySequence")?,
            skey_last_otp: e.bytes("dirbrokerSkeyLastOtp")?.map(<[u8]>::to_vec),
            disabled: flag(e, "dirbrokerDisabled")?,
            not_before: e.time("dirbrokerNotBefore")?,
            not_after: e.time("dirbrokerNotAfter")?,
        })
    }
}

/// A host: names, addresses, host keys and who may log in from where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Host {
    /// Primary name (the RDN `cn`).
    pub name: String,
    /// Further names (more `cn` values), e.g. the FQDN.
    pub aliases: Vec<String>,
    /// `ipHostNumber` values (ipHost requires one).
    pub addresses: Vec<String>,
    /// Host public keys (`sshPublicKey`).
    pub ssh_public_keys: Vec<String>,
    /// The paper's hosts.equiv: hosts trusted by this one.
    pub allowed_from: Vec<String>,
    pub ssh_port: Option<u16>,
    pub disabled: bool,
}

impl Host {
    pub fn new(name: &str, address: &str) -> Result<Host> {
        crate::directory::dn::check_value("host name", name)?;
        crate::directory::dn::check_value("address", address)?;
        Ok(Host {
            name: name.to_string(),
            aliases: Vec::new(),
            addresses: vec![address.to_string()],
            ssh_public_keys: Vec::new(),
            allowed_from: Vec::new(),
            ssh_port: None,
            disabled: false,
        })
    }
}

impl DirEntry for Host {
    const OBJECT_CLASSES: &'static [&'static str] = &["device", "ipHost", "ldapPublicKey", "dirbrokerHost"];
    const KIND_CLASS: &'static str = "ipHost";
    const RDN_ATTR: &'static str = "cn";

    fn container(layout: &Layout) -> &Dn {
        &layout.hosts
    }
    fn rdn_value(&self) -> &str {
        &self.name
    }

    fn to_attrs(&self) -> Attrs {
        let mut b = AttrsBuilder::classes(Self::OBJECT_CLASSES);
        let names: Vec<String> = std::iter::once(self.name.clone()).chain(self.aliases.iter().cloned()).collect();
        b.strs("cn", &names);
        b.strs("ipHostNumber", &self.addresses);
        b.strs("sshPublicKey", &self.ssh_public_keys);
        b.strs("dirbrokerAllowedFrom", &self.allowed_from);
        b.opt_int("dirbrokerSshPort", self.ssh_port.map(i64::from));
        b.flag("dirbrokerDisabled", self.disabled);
        b.done()
    }

    fn from_entry(e: &Entry) -> Result<Host> {
        let rdn_name = e.dn.first_rdn().map(|(_, v)| v);
        let names = strings(e, "cn")?;
        let name = rdn_name.or_else(|| names.first().cloned()).ok_or_else(|| DirError::MalformedEntry {
            dn: e.dn.to_string(),
            attr: "cn".into(),
            reason: "missing".into(),
        })?;
        Ok(Host {
            aliases: names.into_iter().filter(|n| !n.eq_ignore_ascii_case(&name)).collect(),
            name,
            addresses: strings(e, "ipHostNumber")?,
            ssh_public_keys: strings(e, "sshPublicKey")?,
            allowed_from: strings(e, "dirbrokerAllowedFrom")?,
            ssh_port: small_int(e, "dirbrokerSshPort", "a port")?,
            disabled: flag(e, "dirbrokerDisabled")?,
        })
    }
}

/// A data center (seed 000/001): its DID, endpoint and X.509 certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataCenter {
    pub id: String,
    pub name: Option<String>,
    pub endpoint: Option<String>,
    /// DER certificate issued by the broker CA (`userCertificate;binary`).
    pub certificate: Option<Vec<u8>>,
    pub disabled: bool,
}

impl DataCenter {
    pub fn new(id: &str) -> Result<DataCenter> {
        crate::directory::dn::check_value("data-center id", id)?;
        Ok(DataCenter { id: id.to_string(), name: None, endpoint: None, certificate: None, disabled: false })
    }
}

impl DirEntry for DataCenter {
    const OBJECT_CLASSES: &'static [&'static str] = &["dirbrokerDataCenter", "pkiUser"];
    const KIND_CLASS: &'static str = "dirbrokerDataCenter";
    const RDN_ATTR: &'static str = "dirbrokerDcId";

    fn container(layout: &Layout) -> &Dn {
        &layout.datacenters
    }
    fn rdn_value(&self) -> &str {
        &self.id
    }

    fn to_attrs(&self) -> Attrs {
        let mut b = AttrsBuilder::classes(Self::OBJECT_CLASSES);
        b.str("dirbrokerDcId", &self.id);
        b.opt_str("cn", self.name.as_deref());
        b.opt_str("dirbrokerEndpoint", self.endpoint.as_deref());
        b.opt_bytes("userCertificate;binary", self.certificate.as_deref());
        b.flag("dirbrokerDisabled", self.disabled);
        b.done()
    }

    fn from_entry(e: &Entry) -> Result<DataCenter> {
        Ok(DataCenter {
            id: e.required_str("dirbrokerDcId")?.to_string(),
            name: e.strs("cn")?.first().map(|s| s.to_string()),
            endpoint: owned(e.str("dirbrokerEndpoint")?),
            certificate: certificate(e)?,
            disabled: flag(e, "dirbrokerDisabled")?,
        })
    }
}

/// A physical server of a data center, with its sealed TOTP secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PhysicalServer {
    pub id: String,
    pub datacenter: Dn,
    pub endpoint: Option<String>,
    pub totp_secret: Option<Sealed>,
    pub algorithm: Option<String>,
    pub digits: Option<u8>,
    pub period: Option<u32>,
    pub totp_watermark: Option<i64>,
    pub disabled: bool,
}

impl PhysicalServer {
    pub fn new(id: &str, datacenter: Dn) -> Result<PhysicalServer> {
        crate::directory::dn::check_value("server id", id)?;
        Ok(PhysicalServer {
            id: id.to_string(),
            datacenter,
            endpoint: None,
            totp_secret: None,
            algorithm: None,
            digits: None,
            period: None,
            totp_watermark: None,
            disabled: false,
        })
    }
}

impl DirEntry for PhysicalServer {
    const OBJECT_CLASSES: &'static [&'static str] = &["dirbrokerPhysicalServer"];
    const KIND_CLASS: &'static str = "dirbrokerPhysicalServer";
    const RDN_ATTR: &'static str = "dirbrokerServerId";

    fn container(layout: &Layout) -> &Dn {
        &layout.servers
    }
    fn rdn_value(&self) -> &str {
        &self.id
    }

    fn to_attrs(&self) -> Attrs {
        let mut b = AttrsBuilder::classes(Self::OBJECT_CLASSES);
        b.str("dirbrokerServerId", &self.id);
        b.str("dirbrokerDataCenter", self.datacenter.as_str());
        b.opt_str("dirbrokerEndpoint", self.endpoint.as_deref());
        b.opt_bytes("dirbrokerServerTotpSecret", self.totp_secret.as_ref().map(|s| s.0.as_slice()));
        b.opt_str("dirbrokerOtpAlgorithm", self.algorithm.as_deref());
        b.opt_int("dirbrokerOtpDigits", self.digits.map(i64::from));
        b.opt_int("dirbrokerOtpPeriod", self.period.map(i64::from));
        b.opt_int("dirbrokerTotpWatermark", self.totp_watermark);
        b.flag("dirbrokerDisabled", self.disabled);
        b.done()
    }

    fn from_entry(e: &Entry) -> Result<PhysicalServer> {
        Ok(PhysicalServer {
            id: e.required_str("dirbrokerServerId")?.to_string(),
            datacenter: e.dn_value("dirbrokerDataCenter")?.ok_or_else(|| DirError::MalformedEntry {
                dn: e.dn.to_string(),
                attr: "dirbrokerDataCenter".into(),
                reason: "missing".into(),
            })?,
            endpoint: owned(e.str("dirbrokerEndpoint")?),
            totp_secret: sealed(e, "dirbrokerServerTotpSecret")?,
            algorithm: owned(e.str("dirbrokerOtpAlgorithm")?),
            digits: small_int(e, "dirbrokerOtpDigits", "a digit count")?,
            period: small_int(e, "dirbrokerOtpPeriod", "a period")?,
            totp_watermark: e.int("dirbrokerTotpWatermark")?,
            disabled: flag(e, "dirbrokerDisabled")?,
        })
    }
}

/// A Kerberized service (seed 002): ID_k, P_k = g^r_k and T_k.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Service {
    pub id: String,
    pub endpoint: Option<String>,
    pub public_value: Option<Vec<u8>>,
    pub public_value_time: Option<OffsetDateTime>,
    pub min_level: Option<UserLevel>,
    pub disabled: bool,
}

impl Service {
    pub fn new(id: &str) -> Result<Service> {
        crate::directory::dn::check_value("service id", id)?;
        Ok(Service {
            id: id.to_string(),
            endpoint: None,
            public_value: None,
            public_value_time: None,
            min_level: None,
            disabled: false,
        })
    }
}

impl DirEntry for Service {
    const OBJECT_CLASSES: &'static [&'static str] = &["dirbrokerService"];
    const KIND_CLASS: &'static str = "dirbrokerService";
    const RDN_ATTR: &'static str = "dirbrokerServiceId";

    fn container(layout: &Layout) -> &Dn {
        &layout.services
    }
    fn rdn_value(&self) -> &str {
        &self.id
    }

    fn to_attrs(&self) -> Attrs {
        let mut b = AttrsBuilder::classes(Self::OBJECT_CLASSES);
        b.str("dirbrokerServiceId", &self.id);
        b.opt_str("dirbrokerEndpoint", self.endpoint.as_deref());
        b.opt_bytes("dirbrokerPublicValue", self.public_value.as_deref());
        b.opt_time("dirbrokerPublicValueTime", self.public_value_time);
        b.opt_int("dirbrokerMinLevel", self.min_level.map(UserLevel::number));
        b.flag("dirbrokerDisabled", self.disabled);
        b.done()
    }

    fn from_entry(e: &Entry) -> Result<Service> {
        let min_level = match e.int("dirbrokerMinLevel")? {
            None => None,
            Some(n) => Some(UserLevel::from_number(n).ok_or_else(|| DirError::MalformedEntry {
                dn: e.dn.to_string(),
                attr: "dirbrokerMinLevel".into(),
                reason: format!("{n} is not a level from 1 to 4"),
            })?),
        };
        Ok(Service {
            id: e.required_str("dirbrokerServiceId")?.to_string(),
            endpoint: owned(e.str("dirbrokerEndpoint")?),
            public_value: e.bytes("dirbrokerPublicValue")?.map(<[u8]>::to_vec),
            public_value_time: e.time("dirbrokerPublicValueTime")?,
            min_level,
            disabled: flag(e, "dirbrokerDisabled")?,
        })
    }
}

/// Which agent service (seed 002).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AgentRole {
    /// Agent Management System: creates and manages mobile agents.
    Ams,
    /// Agent Name Server: holds authority information, signs user levels.
    Ans,
}

impl AgentRole {
    pub fn as_str(self) -> &'static str {
        match self {
            AgentRole::Ams => "ams",
            AgentRole::Ans => "ans",
        }
    }
}

/// An agent service with its public keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Agent {
    pub name: String,
    pub role: AgentRole,
    pub endpoint: Option<String>,
    /// Ed25519 public key (32 bytes).
    pub signing_key: Option<Vec<u8>>,
    /// X25519 public key (32 bytes).
    pub encryption_key: Option<Vec<u8>>,
    pub certificate: Option<Vec<u8>>,
    pub disabled: bool,
}

impl Agent {
    pub fn new(name: &str, role: AgentRole) -> Result<Agent> {
        crate::directory::dn::check_value("agent name", name)?;
        Ok(Agent {
            name: name.to_string(),
            role,
            endpoint: None,
            signing_key: None,
            encryption_key: None,
            certificate: None,
            disabled: false,
        })
    }
}

impl DirEntry for Agent {
    const OBJECT_CLASSES: &'static [&'static str] = &["dirbrokerAgent", "pkiUser"];
    const KIND_CLASS: &'static str = "dirbrokerAgent";
    const RDN_ATTR: &'static str = "cn";

    fn container(layout: &Layout) -> &Dn {
        &layout.agents
    }
    fn rdn_value(&self) -> &str {
        &self.name
    }

    fn to_attrs(&self) -> Attrs {
        let mut b = AttrsBuilder::classes(Self::OBJECT_CLASSES);
        b.str("cn", &self.name);
        b.str("dirbrokerAgentRole", self.role.as_str());
        b.opt_str("dirbrokerEndpoint", self.endpoint.as_deref());
        b.opt_bytes("dirbrokerSigningKey", self.signing_key.as_deref());
        b.opt_bytes("dirbrokerEncryptionKey", self.encryption_key.as_deref());
        b.opt_bytes("userCertificate;binary", self.certificate.as_deref());
        b.flag("dirbrokerDisabled", self.disabled);
        b.done()
    }

    fn from_entry(e: &Entry) -> Result<Agent> {
        let role_text = e.required_str("dirbrokerAgentRole")?;
        let role = match role_text.to_ascii_lowercase().as_str() {
            "ams" => AgentRole::Ams,
            "ans" => AgentRole::Ans,
            other => {
                return Err(DirError::MalformedEntry {
                    dn: e.dn.to_string(),
                    attr: "dirbrokerAgentRole".into(),
                    reason: format!("{other:?} is not ams or ans"),
                });
            }
        };
        Ok(Agent {
            name: e.dn.first_rdn().map(|(_, v)| v).unwrap_or_default(),
            role,
            endpoint: owned(e.str("dirbrokerEndpoint")?),
            signing_key: e.bytes("dirbrokerSigningKey")?.map(<[u8]>::to_vec),
            encryption_key: e.bytes("dirbrokerEncryptionKey")?.map(<[u8]>::to_vec),
            certificate: certificate(e)?,
            disabled: flag(e, "dirbrokerDisabled")?,
        })
    }
}

/// A pre-shared key between parties (the paper's K1, admin console ↔ data center).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreSharedKey {
    pub id: String,
    pub parties: Vec<Dn>,
    pub secret: Sealed,
    pub not_before: Option<OffsetDateTime>,
    pub not_after: Option<OffsetDateTime>,
    pub disabled: bool,
}

impl DirEntry for PreSharedKey {
    const OBJECT_CLASSES: &'static [&'static str] = &["dirbrokerPreSharedKey"];
    const KIND_CLASS: &'static str = "dirbrokerPreSharedKey";
    const RDN_ATTR: &'static str = "dirbrokerPskId";

    fn container(layout: &Layout) -> &Dn {
        &layout.psk
    }
    fn rdn_value(&self) -> &str {
        &self.id
    }

    fn to_attrs(&self) -> Attrs {
        let mut b = AttrsBuilder::classes(Self::OBJECT_CLASSES);
        b.str("dirbrokerPskId", &self.id);
        b.dns("dirbrokerPskParty", &self.parties);
        b.bytes("dirbrokerPskSecret", self.secret.0.clone());
        b.opt_time("dirbrokerNotBefore", self.not_before);
        b.opt_time("dirbrokerNotAfter", self.not_after);
        b.flag("dirbrokerDisabled", self.disabled);
        b.done()
    }

    fn from_entry(e: &Entry) -> Result<PreSharedKey> {
        Ok(PreSharedKey {
            id: e.required_str("dirbrokerPskId")?.to_string(),
            parties: {
                let mut p = e.dns("dirbrokerPskParty")?;
                p.sort();
                p
            },
            secret: sealed(e, "dirbrokerPskSecret")?.ok_or_else(|| DirError::MalformedEntry {
                dn: e.dn.to_string(),
                attr: "dirbrokerPskSecret".into(),
                reason: "missing".into(),
            })?,
            not_before: e.time("dirbrokerNotBefore")?,
            not_after: e.time("dirbrokerNotAfter")?,
            disabled: flag(e, "dirbrokerDisabled")?,
        })
    }
}

/// Typed operations on top of [`Directory`].
impl Directory {
    /// Create `item` under its container.
    pub async fn create<T: DirEntry>(&self, item: &T) -> Result<Dn> {
        let dn = item.dn(self.layout())?;
        self.add(&dn, item.to_attrs()).await?;
        Ok(dn)
    }

    /// Load the entry of kind `T` named `id`.
    pub async fn load<T: DirEntry>(&self, id: &str) -> Result<T> {
        let dn = T::dn_for(self.layout(), id)?;
        let entry = self.read(&dn, &["*"]).await?;
        T::from_entry(&entry)
    }

    /// Every entry of kind `T` under its container.
    pub async fn list<T: DirEntry>(&self) -> Result<Vec<T>> {
        let base = T::container(self.layout());
        let filter = crate::directory::Filter::object_class(T::KIND_CLASS);
        let entries = self.search(base, crate::directory::Scope::Subtree, &filter, &["*"]).await?;
        entries.iter().map(T::from_entry).collect()
    }

    /// Find a user by `uid` anywhere under the people container, whichever
    /// tool wrote the entry (it need not carry dirbroker's classes). The uid
    /// must match exactly, case included, as a login name does.
    pub async fn find_user(&self, uid: &str) -> Result<Option<User>> {
        crate::directory::dn::check_value("uid", uid)?;
        let filter = crate::directory::Filter::eq("uid", uid);
        let found = self.find_one(&self.layout().people, &filter, &["*"]).await?;
        // uid matching in LDAP ignores case and surplus spaces; logins do not.
        let exact = found.filter(|e| e.strs("uid").is_ok_and(|v| v.contains(&uid)));
        exact.as_ref().map(User::from_entry).transpose()
    }

    /// The OTP token entries owned by `owner` (read with `attrs`), in no
    /// particular order.
    pub async fn owner_token_entries(&self, owner: &Dn, attrs: &[&str]) -> Result<Vec<Entry>> {
        use crate::directory::{Filter, Scope};
        let filter = Filter::and([
            Filter::object_class(OtpToken::KIND_CLASS),
            Filter::eq("dirbrokerTokenOwner", owner.as_str()),
        ]);
        self.search(&self.layout().otp, Scope::OneLevel, &filter, attrs).await
    }
}
