//! How each kind of entry maps to LDAP attributes and back: every
//! `impl DirEntry` in one file, so the attribute lists sit side by side (and
//! one declaration per attribute, if it comes, replaces them in one place).
//! The types and their rules are in the kind's own file.

use super::*;
use crate::directory::{Attrs, DirError, Dn, Entry, Layout, Result};

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
        b.opt_time("dirbrokerNotBefore", self.not_before);
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
        b.dns("dirbrokerOtpVerifier", &self.otp_verifiers);
        b.done()
    }

    fn from_entry(e: &Entry) -> Result<User> {
        let level = match e.int("dirbrokerUserLevel")? {
            None => Level::Normal,
            Some(n) => Level::from_number(n).ok_or_else(|| DirError::MalformedEntry {
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
            not_before: e.time("dirbrokerNotBefore")?,
            not_after: e.time("dirbrokerNotAfter")?,
            posix,
            ssh_public_keys: strings(e, "sshPublicKey")?,
            allowed_from: strings(e, "dirbrokerAllowedFrom")?,
            public_value: e.bytes("dirbrokerPublicValue")?.map(<[u8]>::to_vec),
            public_value_time: e.time("dirbrokerPublicValueTime")?,
            password_kdf: e.bytes("dirbrokerPasswordKdf")?.map(<[u8]>::to_vec),
            keystroke_hardening: flag(e, "dirbrokerKeystrokeHardening")?,
            sealed_ssh_private_key: sealed(e, "dirbrokerSealedSshPrivateKey")?,
            otp_verifiers: e.dns("dirbrokerOtpVerifier")?,
        })
    }
}

impl DirEntry for Group {
    const OBJECT_CLASSES: &'static [&'static str] = &["posixGroup"];
    const KIND_CLASS: &'static str = "posixGroup";
    const RDN_ATTR: &'static str = "cn";

    fn container(layout: &Layout) -> &Dn {
        &layout.groups
    }
    fn rdn_value(&self) -> &str {
        &self.name
    }

    fn to_attrs(&self) -> Attrs {
        let mut b = AttrsBuilder::classes(Self::OBJECT_CLASSES);
        b.str("cn", &self.name);
        b.bytes("gidNumber", int_value(self.gid_number.into()));
        b.strs("memberUid", &self.members);
        b.opt_str("description", self.description.as_deref());
        b.done()
    }

    fn from_entry(e: &Entry) -> Result<Group> {
        // The RDN names the group; other tools may add more cn values.
        let name = match e.dn.first_rdn() {
            Some((attr, value)) if attr.eq_ignore_ascii_case("cn") => value,
            _ => e.required_str("cn")?.to_string(),
        };
        Ok(Group {
            name,
            gid_number: small_int(e, "gidNumber", "a gid number")?.ok_or_else(|| DirError::MalformedEntry {
                dn: e.dn.to_string(),
                attr: "gidNumber".into(),
                reason: "missing".into(),
            })?,
            members: strings(e, "memberUid")?,
            description: e.strs("description")?.first().map(|s| s.to_string()),
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
        b.opt_time("dirbrokerOtpLastFailure", self.last_failure);
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
            last_failure: e.time("dirbrokerOtpLastFailure")?,
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
        b.opt_int("dirbrokerMinLevel", self.min_level.map(Level::number));
        b.flag("dirbrokerAllowAnonymous", self.allow_anonymous);
        b.flag("dirbrokerDisabled", self.disabled);
        b.done()
    }

    fn from_entry(e: &Entry) -> Result<Service> {
        let min_level = match e.int("dirbrokerMinLevel")? {
            None => None,
            Some(n) => Some(Level::from_number(n).ok_or_else(|| DirError::MalformedEntry {
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
            allow_anonymous: flag(e, "dirbrokerAllowAnonymous")?,
            disabled: flag(e, "dirbrokerDisabled")?,
        })
    }
}

impl DirEntry for OidcClient {
    const OBJECT_CLASSES: &'static [&'static str] = &["dirbrokerOidcClient"];
    const KIND_CLASS: &'static str = "dirbrokerOidcClient";
    const RDN_ATTR: &'static str = "dirbrokerOidcClientId";

    fn container(layout: &Layout) -> &Dn {
        &layout.services
    }
    fn rdn_value(&self) -> &str {
        &self.id
    }

    fn to_attrs(&self) -> Attrs {
        let mut b = AttrsBuilder::classes(Self::OBJECT_CLASSES);
        b.str("dirbrokerOidcClientId", &self.id);
        b.strs("dirbrokerOidcRedirectUri", &self.redirect_uris);
        b.opt_bytes("dirbrokerOidcSecretHash", self.secret_sha256.as_ref().map(|h| h.as_slice()));
        b.flag("dirbrokerDisabled", self.disabled);
        b.done()
    }

    fn from_entry(e: &Entry) -> Result<OidcClient> {
        let secret_sha256 = match e.bytes("dirbrokerOidcSecretHash")? {
            None => None,
            Some(h) => Some(<[u8; 32]>::try_from(h).map_err(|_| DirError::MalformedEntry {
                dn: e.dn.to_string(),
                attr: "dirbrokerOidcSecretHash".into(),
                reason: format!("{} bytes, not a SHA-256", h.len()),
            })?),
        };
        Ok(OidcClient {
            id: e.required_str("dirbrokerOidcClientId")?.to_string(),
            redirect_uris: e.strs("dirbrokerOidcRedirectUri")?.into_iter().map(str::to_string).collect(),
            secret_sha256,
            disabled: flag(e, "dirbrokerDisabled")?,
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
