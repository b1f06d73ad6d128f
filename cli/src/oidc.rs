//! `dirbroker oidc client …`: the relying parties of the OpenID Connect
//! provider (issue #17; docs/oidc.md), stored as `dirbrokerOidcClient`
//! entries that only the broker reads. A confidential client's secret is
//! drawn here, shown once, and stored as its SHA-256.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use clap::{Args, Subcommand};
use dirbroker::directory::DirError;
use dirbroker::model::{DirEntry as _, OidcClient};
use dirbroker_proto::sso::primitives::sha256;
use serde_json::json;
use zeroize::Zeroizing;

use super::{CliResult, Ctx, Failure, Output, load_named};
use crate::exit::Exit;

#[derive(Subcommand, Debug)]
pub enum OidcCmd {
    /// Relying parties (applications that sign users in with OpenID Connect).
    #[command(subcommand)]
    Client(ClientCmd),
}

#[derive(Subcommand, Debug)]
pub enum ClientCmd {
    /// Register an application: its client_id and exact redirect URIs; prints its secret once.
    #[command(
        after_help = "Examples:\n  dirbroker oidc client add wiki --redirect-uri https://wiki.example.org/oidc/callback\n  \
        dirbroker oidc client add cli-app --public --redirect-uri http://127.0.0.1:8400/cb\n  \
        dirbroker --output json oidc client add wiki --redirect-uri https://wiki.example.org/cb\n\n\
        A confidential client gets a random secret, printed here and never again (the directory\n\
        keeps its SHA-256); give it to the application. --public: no secret, PKCE alone (apps\n\
        that cannot keep a secret). Redirect URIs are compared byte for byte; https only, or\n\
        http to a loopback address."
    )]
    Add(AddArgs),
    /// List the registered applications.
    #[command(after_help = "Examples:\n  dirbroker oidc client list\n  dirbroker --output json oidc client list")]
    List,
    /// Remove an application: its codes and tokens stop being redeemed or answered at once.
    #[command(after_help = "Example:\n  dirbroker oidc client remove wiki")]
    Remove {
        /// The client_id.
        id: String,
    },
}

#[derive(Args, Debug)]
pub struct AddArgs {
    /// The client_id the application sends.
    id: String,
    /// A redirect URI (repeat for several).
    #[arg(long = "redirect-uri", value_name = "URI", required = true)]
    redirect_uris: Vec<String>,
    /// A public client: no secret, PKCE alone.
    #[arg(long)]
    public: bool,
}

/// A redirect URI an application may register: absolute, no fragment, no
/// credentials, https (or http to loopback), at most 512 bytes.
fn check_redirect_uri(u: &str) -> Result<(), Failure> {
    let bad = |why: &str| Err(Failure::usage(format!("--redirect-uri {u:?}: {why}")));
    if u.len() > 512 {
        return bad("longer than 512 bytes");
    }
    let Ok(url) = url::Url::parse(u) else { return bad("not an absolute URL") };
    if url.fragment().is_some() || !url.username().is_empty() || url.password().is_some() {
        return bad("no fragment or credentials allowed");
    }
    let loopback = matches!(url.host_str(), Some("127.0.0.1" | "[::1]" | "localhost"));
    match url.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        _ => bad("must be https (or http to 127.0.0.1, [::1] or localhost)"),
    }
}

fn show(c: &OidcClient) -> serde_json::Value {
    json!({
        "id": c.id,
        "redirect_uris": c.redirect_uris,
        "confidential": c.secret_sha256.is_some(),
        "disabled": c.disabled,
    })
}

pub async fn run(ctx: &Ctx, cmd: OidcCmd) -> CliResult {
    let OidcCmd::Client(cmd) = cmd;
    match cmd {
        ClientCmd::Add(a) => {
            let mut client = OidcClient::new(&a.id)?;
            for u in &a.redirect_uris {
                check_redirect_uri(u)?;
            }
            let dir = ctx.directory().await?;
            if dir.load::<OidcClient>(&a.id).await.is_ok() {
                return Err(Failure::new(Exit::Failed, format!("client {:?} exists already", a.id)));
            }
            client.redirect_uris = a.redirect_uris.clone();
            let secret = if a.public {
                None
            } else {
                let mut raw = Zeroizing::new([0u8; 32]);
                dirbroker::clock::fill_random(raw.as_mut_slice())
                    .map_err(|_| Failure::new(Exit::Failed, "no randomness"))?;
                let secret = Zeroizing::new(URL_SAFE_NO_PAD.encode(raw.as_slice()));
                client.secret_sha256 = Some(sha256(secret.as_bytes()));
                Some(secret)
            };
            dir.create(&client).await?;
            let mut value = show(&client);
            let kind = match &secret {
                Some(s) => {
                    if let Some(m) = value.as_object_mut() {
                        m.insert("client_secret".into(), json!(s.as_str()));
                    }
                    format!("confidential; its secret (shown once, keep it with the application):\n{}", s.as_str())
                }
                None => "public: PKCE alone, no secret".to_string(),
            };
            ctx.report(value, &format!("client {} registered, {kind}", a.id));
            Ok(())
        }
        ClientCmd::List => {
            let dir = ctx.directory().await?;
            let mut all = dir.list::<OidcClient>().await?;
            all.sort_by(|a, b| a.id.cmp(&b.id));
            if ctx.output == Output::Json {
                ctx.json(&json!(all.iter().map(show).collect::<Vec<_>>()));
            } else if all.is_empty() {
                println!("no OpenID Connect clients (add one with `dirbroker oidc client add`)");
            } else {
                println!("{:<24} {:<13} REDIRECT URIS", "CLIENT", "KIND");
                for c in &all {
                    let kind = match (c.disabled, c.secret_sha256.is_some()) {
                        (true, _) => "disabled",
                        (false, true) => "confidential",
                        (false, false) => "public",
                    };
                    println!("{:<24} {kind:<13} {}", c.id, c.redirect_uris.join(" "));
                }
            }
            Ok(())
        }
        ClientCmd::Remove { id } => {
            let dir = ctx.directory().await?;
            let c: OidcClient = load_named(&dir, &id, "OpenID Connect client").await?;
            match dir.delete(&c.dn(dir.layout())?).await {
                Ok(()) | Err(DirError::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
            ctx.report(json!({ "removed": id }), &format!("client {id} removed"));
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_uris_must_be_https_or_loopback() {
        for good in ["https://wiki.example.org/cb", "http://127.0.0.1:8400/cb", "http://localhost/cb", "http://[::1]/x"]
        {
            assert!(check_redirect_uri(good).is_ok(), "{good}");
        }
        for bad in [
            "http://wiki.example.org/cb",
            "https://wiki.example.org/cb#frag",
            "https://u:p@wiki.example.org/cb",
            "/cb",
            "javascript:alert(1)",
            "data:text/html,x",
        ] {
            assert!(check_redirect_uri(bad).is_err(), "{bad}");
        }
        assert!(check_redirect_uri(&format!("https://a.example/{}", "x".repeat(600))).is_err());
    }
}
