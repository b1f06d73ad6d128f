//! The account rule, one for every path that authenticates or authorises: an
//! entry that is disabled, not yet valid or expired may not be used. SSH key
//! lookups, OTP verification, SSO login and ticket issuance, key escrow and
//! `user check-password` all ask [`Validity::usable_at`]; slapd itself
//! refuses a disabled user's bind (schema/acl.ldif).

use time::OffsetDateTime;

use crate::directory::{Entry, Result};

/// Why an entry may not be used now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Unusable {
    /// `dirbrokerDisabled: TRUE`.
    #[error("disabled")]
    Disabled,
    /// Before `dirbrokerNotBefore`.
    #[error("not valid before {0}")]
    NotYetValid(OffsetDateTime),
    /// After `dirbrokerNotAfter`.
    #[error("expired at {0}")]
    Expired(OffsetDateTime),
}

/// The state the rule reads: `dirbrokerDisabled`, `dirbrokerNotBefore`,
/// `dirbrokerNotAfter` (absent bounds are open).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Validity {
    pub disabled: bool,
    pub not_before: Option<OffsetDateTime>,
    pub not_after: Option<OffsetDateTime>,
}

impl Validity {
    /// `Ok` when the entry may be used at `now`; the bounds are inclusive.
    pub fn usable_at(&self, now: OffsetDateTime) -> std::result::Result<(), Unusable> {
        if self.disabled {
            return Err(Unusable::Disabled);
        }
        if let Some(t) = self.not_before.filter(|&t| now < t) {
            return Err(Unusable::NotYetValid(t));
        }
        if let Some(t) = self.not_after.filter(|&t| now > t) {
            return Err(Unusable::Expired(t));
        }
        Ok(())
    }

    /// The same state read from a raw entry (the node binary's lookups read
    /// entries, not typed users); a malformed value is an error, never "usable".
    pub fn from_entry(e: &Entry) -> Result<Validity> {
        Ok(Validity {
            disabled: e.bool("dirbrokerDisabled")?.unwrap_or(false),
            not_before: e.time("dirbrokerNotBefore")?,
            not_after: e.time("dirbrokerNotAfter")?,
        })
    }
}

/// A validity bound as an operator writes it: RFC 3339
/// (`2027-01-31T18:00:00Z`, `2027-01-31T18:00:00+01:00`) or a date
/// (`2027-01-31`, the start of that day in UTC).
pub fn parse_bound(s: &str) -> std::result::Result<OffsetDateTime, String> {
    use time::format_description::well_known::Rfc3339;
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Ok(t);
    }
    let date = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(s, &date)
        .map(|d| d.midnight().assume_utc())
        .map_err(|_| format!("{s:?} is neither a date (2027-01-31) nor an RFC 3339 time (2027-01-31T18:00:00Z)"))
}

/// An entry kind the account rule applies to.
pub trait Usable {
    /// Its disabled flag and validity bounds.
    fn validity(&self) -> Validity;

    /// [`Validity::usable_at`] on this entry.
    fn usable_at(&self, now: OffsetDateTime) -> std::result::Result<(), Unusable> {
        self.validity().usable_at(now)
    }
}

impl Usable for super::User {
    fn validity(&self) -> Validity {
        Validity { disabled: self.disabled, not_before: self.not_before, not_after: self.not_after }
    }
}

impl Usable for super::OtpToken {
    fn validity(&self) -> Validity {
        Validity { disabled: self.disabled, not_before: self.not_before, not_after: self.not_after }
    }
}

impl Usable for super::PreSharedKey {
    fn validity(&self) -> Validity {
        Validity { disabled: self.disabled, not_before: self.not_before, not_after: self.not_after }
    }
}

/// Kinds with a disabled flag and no validity bounds.
macro_rules! disabled_only {
    ($($kind:ident),*) => {$(
        impl Usable for super::$kind {
            fn validity(&self) -> Validity {
                Validity { disabled: self.disabled, ..Validity::default() }
            }
        }
    )*};
}
disabled_only!(Host, DataCenter, Agent, Service, PhysicalServer);

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn disabled_early_and_late_are_refused_and_the_bounds_are_inclusive() {
        let (nb, na) = (datetime!(2026-01-01 0:00 UTC), datetime!(2026-12-31 0:00 UTC));
        let v = Validity { disabled: false, not_before: Some(nb), not_after: Some(na) };
        assert_eq!(v.usable_at(nb), Ok(()));
        assert_eq!(v.usable_at(na), Ok(()));
        assert_eq!(v.usable_at(nb - time::Duration::SECOND), Err(Unusable::NotYetValid(nb)));
        assert_eq!(v.usable_at(na + time::Duration::SECOND), Err(Unusable::Expired(na)));
        assert_eq!(Validity { disabled: true, ..v }.usable_at(nb), Err(Unusable::Disabled));
        assert_eq!(Validity::default().usable_at(na), Ok(()));
    }

    #[test]
    fn bounds_are_dates_or_rfc3339_and_nothing_else() {
        assert_eq!(parse_bound("2027-01-31"), Ok(datetime!(2027-01-31 0:00 UTC)));
        assert_eq!(parse_bound("2027-01-31T18:00:00Z"), Ok(datetime!(2027-01-31 18:00 UTC)));
        assert_eq!(parse_bound("2027-01-31T18:00:00+01:00"), Ok(datetime!(2027-01-31 17:00 UTC)));
        for bad in ["", "tomorrow", "2027-02-30", "20270131000000Z", "2027-01-31 18:00", "2027-1-31"] {
            assert!(parse_bound(bad).is_err(), "{bad:?}");
        }
    }
}
