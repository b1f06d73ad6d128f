//! Search filters (RFC 4515) built as values: attribute names come from
//! code, assertion values are escaped when the filter is rendered, so input
//! can never change a filter's structure.

use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Filter {
    /// `(attr=value)`, value escaped.
    Eq(&'static str, String),
    /// `(attr=*)`
    Present(&'static str),
    /// `(attr>=value)`, value escaped: the attribute's ORDERING rule decides.
    Ge(&'static str, String),
    And(Vec<Filter>),
    Or(Vec<Filter>),
    Not(Box<Filter>),
    /// A whole filter an administrator typed (e.g. `dirbroker export --filter`),
    /// checked by the RFC 4515 parser; never built from pieces of input.
    Checked(String),
}

impl Filter {
    pub fn eq(attr: &'static str, value: impl Into<String>) -> Filter {
        Filter::Eq(attr, value.into())
    }

    pub fn object_class(class: &'static str) -> Filter {
        Filter::Eq("objectClass", class.to_string())
    }

    pub fn and(parts: impl IntoIterator<Item = Filter>) -> Filter {
        Filter::And(parts.into_iter().collect())
    }

    pub fn or(parts: impl IntoIterator<Item = Filter>) -> Filter {
        Filter::Or(parts.into_iter().collect())
    }

    /// Matches every entry: `(objectClass=*)`.
    pub fn any() -> Filter {
        Filter::Present("objectClass")
    }

    /// Accept a complete filter from an administrator if it parses (RFC 4515).
    pub fn parse_whole(text: &str) -> Result<Filter, crate::directory::DirError> {
        let t = text.trim();
        if t.len() > 4096 {
            return Err(crate::directory::DirError::bad_input("filter", "longer than 4096 bytes"));
        }
        ldap3::parse_filter(t)
            .map_err(|_| crate::directory::DirError::bad_input("filter", format!("{t:?} is not an RFC 4515 filter")))?;
        Ok(Filter::Checked(t.to_string()))
    }
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Filter::Eq(attr, value) => write!(f, "({attr}={})", ldap3::ldap_escape(value.as_str())),
            Filter::Present(attr) => write!(f, "({attr}=*)"),
            Filter::Ge(attr, value) => write!(f, "({attr}>={})", ldap3::ldap_escape(value.as_str())),
            Filter::And(parts) => {
                f.write_str("(&")?;
                parts.iter().try_for_each(|p| p.fmt(f))?;
                f.write_str(")")
            }
            Filter::Or(parts) => {
                f.write_str("(|")?;
                parts.iter().try_for_each(|p| p.fmt(f))?;
                f.write_str(")")
            }
            Filter::Not(inner) => write!(f, "(!{inner})"),
            Filter::Checked(text) => f.write_str(text),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_cannot_change_structure() {
        let f = Filter::and([Filter::object_class("inetOrgPerson"), Filter::eq("uid", "*)(uid=*")]);
        assert_eq!(f.to_string(), r"(&(objectClass=inetOrgPerson)(uid=\2a\29\28uid=\2a))");
        assert_eq!(Filter::eq("uid", "a\\2a\u{0}").to_string(), r"(uid=a\5c2a\00)");
        assert_eq!(Filter::Not(Box::new(Filter::Present("sshPublicKey"))).to_string(), "(!(sshPublicKey=*))");
    }
}
