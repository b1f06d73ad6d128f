//! An OpenID Connect relying party: a `dirbrokerOidcClient` entry under
//! `ou=services` (issue #17; docs/oidc.md). Only the broker reads it (ACL
//! rule {13}): the redirect URIs decide where codes go, and a confidential
//! client's secret is stored as its SHA-256 only.

use crate::directory::Result;

/// A relying party: its client_id, exact-match redirect URIs and, for a
/// confidential client, the SHA-256 of its secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OidcClient {
    pub id: String,
    pub redirect_uris: Vec<String>,
    /// `None`: a public client (PKCE alone).
    pub secret_sha256: Option<[u8; 32]>,
    pub disabled: bool,
}

impl OidcClient {
    pub fn new(id: &str) -> Result<OidcClient> {
        crate::directory::dn::check_value("client id", id)?;
        // RFC 6749 allows %x20-7E; the attribute is IA5 and the id travels in
        // URLs and HTTP Basic, so: visible ASCII, no space, no colon.
        if !id.bytes().all(|b| b.is_ascii_graphic() && b != b':') {
            return Err(crate::directory::DirError::bad_input(
                "client id",
                "must be visible ASCII without spaces or ':'",
            ));
        }
        Ok(OidcClient { id: id.to_string(), redirect_uris: Vec::new(), secret_sha256: None, disabled: false })
    }
}
