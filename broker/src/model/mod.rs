//! Typed directory entries: one struct per kind of entry the mission needs,
//! each with its DN rule and its conversion to and from LDAP attributes.
//! The meaning of every attribute is in docs/directory.md.

mod agent;
mod data_center;
mod group;
mod host;
mod ldap;
mod oidc_client;
mod otp_token;
mod physical_server;
pub mod posix_name;
mod psk;
mod service;
mod user;
mod validity;

pub use agent::{Agent, AgentRole};
pub use data_center::DataCenter;
pub use group::Group;
pub use host::Host;
pub use oidc_client::OidcClient;
pub use otp_token::{OtpToken, TokenType};
pub use physical_server::PhysicalServer;
pub use psk::PreSharedKey;
pub use service::Service;
pub use user::{Level, Posix, User};
pub use validity::{Unusable, Usable, Validity, parse_bound};

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
