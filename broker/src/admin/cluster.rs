//! Operator work on replicated providers (docs/replication.md): who is the
//! writer, whether the providers hold the same data, and changing the writer
//! without a window (`dirbroker cluster status|compare|switchover|fence|promote`).
//!
//! Data is read on each provider's data URI with the configured identity;
//! the writer is chosen in each provider's cn=config (`olcReadOnly` on the
//! database of our suffix), reached on its `config_uri` with SASL EXTERNAL
//! (ldapi:// as root on that machine, or TLS with a client certificate).

use std::collections::BTreeMap;
use std::time::Duration;

use ldap3::Mod;
use serde::Serialize;

use crate::config::ClusterProvider;
use crate::directory::{Bind, DirError, Directory, DirectoryConfig, Dn, Filter, Scope};

/// What one provider says about itself.
#[derive(Clone, Debug, Serialize)]
pub struct ProviderState {
    pub uri: String,
    /// Answered on its data URI.
    pub reachable: bool,
    /// `olcReadOnly` of our database (None: cn=config not reachable or not configured).
    pub read_only: Option<bool>,
    /// `olcServerID` (None as above).
    pub server_id: Option<u32>,
    /// The suffix entry's contextCSN values (one per provider that wrote).
    pub context_csn: Vec<String>,
    pub error: Option<String>,
}

impl ProviderState {
    /// Reachable and taking writes.
    pub fn is_writer(&self) -> bool {
        self.reachable && self.read_only == Some(false)
    }
}

/// One entry that differs between two providers.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Divergence {
    pub dn: String,
    /// What the reference provider has (entryUUID entryCSN), or none.
    pub reference: Option<String>,
    /// What the other provider has.
    pub other: Option<String>,
    pub provider: String,
}

fn data_config(base: &DirectoryConfig, uri: &str) -> DirectoryConfig {
    let mut cfg = base.clone();
    cfg.uris = vec![uri.to_string()];
    cfg.writer = None;
    cfg.try_last.clear();
    cfg
}

fn config_config(base: &DirectoryConfig, p: &ClusterProvider) -> Result<DirectoryConfig, DirError> {
    let uri = p.config_uri.clone().ok_or_else(|| {
        DirError::Config(format!("[[cluster.provider]] {} has no config_uri: cn=config cannot be reached", p.uri))
    })?;
    let mut cfg = DirectoryConfig::new(vec![uri], base.base_dn.clone(), Bind::External);
    cfg.tls = base.tls.clone();
    cfg.connect_timeout = base.connect_timeout;
    cfg.op_timeout = base.op_timeout;
    Ok(cfg)
}

/// The cn=config entry of the database holding `suffix` on one provider.
async fn database_dn(conf: &Directory, suffix: &str) -> Result<Dn, DirError> {
    let config = Dn::parse("cn=config").map_err(|e| DirError::Config(e.to_string()))?;
    let found = conf.search(&config, Scope::OneLevel, &Filter::eq("olcSuffix", suffix), &["olcSuffix"]).await?;
    match found.as_slice() {
        [one] => Ok(one.dn.clone()),
        [] => Err(DirError::NotFound { what: format!("a database with olcSuffix {suffix} in cn=config") }),
        _ => Err(DirError::Config(format!("several databases hold {suffix}"))),
    }
}

/// Status of every provider (never fails: what could not be read is reported).
pub async fn status(base: &DirectoryConfig, providers: &[ClusterProvider]) -> Vec<ProviderState> {
    let mut out = Vec::new();
    for p in providers {
        let mut st = ProviderState {
            uri: p.uri.clone(),
            reachable: false,
            read_only: None,
            server_id: None,
            context_csn: Vec::new(),
            error: None,
        };
        match context_csn(base, &p.uri).await {
            Ok(csn) => {
                st.reachable = true;
                st.context_csn = csn;
            }
            Err(e) => st.error = Some(e.to_string()),
        }
        if p.config_uri.is_some() {
            match read_config(base, p).await {
                Ok((ro, sid)) => {
                    st.read_only = Some(ro);
                    st.server_id = sid;
                }
                Err(e) => st.error = Some(st.error.map_or_else(|| e.to_string(), |prev| format!("{prev}; {e}"))),
            }
        }
        out.push(st);
    }
    out
}

async fn context_csn(base: &DirectoryConfig, uri: &str) -> Result<Vec<String>, DirError> {
    let dir = Directory::connect_once(data_config(base, uri)).await?;
    let suffix = dir.layout().base.clone();
    let e = dir.read(&suffix, &["contextCSN"]).await;
    dir.close();
    let mut csn: Vec<String> = e?.strs("contextCSN")?.into_iter().map(str::to_string).collect();
    csn.sort();
    Ok(csn)
}

async fn read_config(base: &DirectoryConfig, p: &ClusterProvider) -> Result<(bool, Option<u32>), DirError> {
    let conf = Directory::connect_once(config_config(base, p)?).await?;
    let db = database_dn(&conf, &base.base_dn).await?;
    let entry = conf.read(&db, &["olcReadOnly"]).await?;
    let read_only = entry.bool("olcReadOnly")?.unwrap_or(false);
    let global =
        conf.read(&Dn::parse("cn=config").map_err(|e| DirError::Config(e.to_string()))?, &["olcServerID"]).await?;
    let sid = global.str("olcServerID")?.and_then(|s| s.split_whitespace().next()).and_then(|s| s.parse().ok());
    conf.close();
    Ok((read_only, sid))
}

/// Set or clear `olcReadOnly` on one provider's database.
pub async fn set_read_only(base: &DirectoryConfig, p: &ClusterProvider, read_only: bool) -> Result<(), DirError> {
    let conf = Directory::connect_once(config_config(base, p)?).await?;
    let db = database_dn(&conf, &base.base_dn).await?;
    let v = if read_only { "TRUE" } else { "FALSE" };
    let r = conf.modify(&db, vec![Mod::Replace(b"olcReadOnly".to_vec(), [v.as_bytes().to_vec()].into())]).await;
    conf.close();
    r
}

/// Every entry of one provider as DN → "entryUUID entryCSN", read with the
/// configured identity (entries it cannot see are not compared).
pub async fn snapshot(base: &DirectoryConfig, uri: &str) -> Result<BTreeMap<String, String>, DirError> {
    let mut cfg = data_config(base, uri);
    cfg.op_timeout = cfg.op_timeout.max(Duration::from_secs(30));
    let dir = Directory::connect_once(cfg).await?;
    let suffix = dir.layout().base.clone();
    let mut map = BTreeMap::new();
    let counted = dir
        .search_each(&suffix, Scope::Subtree, &Filter::any(), &["entryUUID", "entryCSN"], 1000, |e| {
            let uuid = e.str("entryUUID")?.unwrap_or_default().to_string();
            let csn = e.str("entryCSN")?.unwrap_or_default().to_string();
            map.insert(e.dn.normalized(), format!("{uuid} {csn}"));
            Ok::<(), DirError>(())
        })
        .await;
    dir.close();
    counted?;
    Ok(map)
}

/// Entries in which each other provider differs from the first: equal
/// contextCSNs do not prove equal data.
pub async fn compare(base: &DirectoryConfig, uris: &[String]) -> Result<Vec<Divergence>, DirError> {
    let Some((first, rest)) = uris.split_first() else {
        return Ok(Vec::new());
    };
    let reference = snapshot(base, first).await?;
    let mut out = Vec::new();
    for uri in rest {
        let other = snapshot(base, uri).await?;
        let dns: std::collections::BTreeSet<&String> = reference.keys().chain(other.keys()).collect();
        for dn in dns {
            let (a, b) = (reference.get(dn), other.get(dn));
            if a != b {
                out.push(Divergence {
                    dn: dn.clone(),
                    reference: a.cloned(),
                    other: b.cloned(),
                    provider: uri.clone(),
                });
            }
        }
    }
    Ok(out)
}

/// How a switchover went.
#[derive(Clone, Debug, Serialize)]
pub struct Switchover {
    pub from: String,
    pub to: String,
    /// Milliseconds the successor needed to hold every entry of the old writer.
    pub caught_up_ms: u128,
}

/// A planned change of writer with no window: the writer becomes read-only
/// (from then on no code can be accepted anywhere), the successor is waited
/// for until it holds exactly the old writer's entries (entryUUID and
/// entryCSN of every entry), then it takes writes. Refused unless `from` is
/// the only writer. On a timeout the old writer is made writable again.
pub async fn switchover(
    base: &DirectoryConfig,
    providers: &[ClusterProvider],
    from: &ClusterProvider,
    to: &ClusterProvider,
    limit: Duration,
) -> Result<Switchover, DirError> {
    if from.uri == to.uri {
        return Err(DirError::bad_input("--to", "is already the writer"));
    }
    let states = status(base, providers).await;
    let writers: Vec<&ProviderState> = states.iter().filter(|s| s.is_writer()).collect();
    if writers.len() != 1 || writers.first().is_none_or(|w| w.uri != from.uri) {
        let names: Vec<&str> = writers.iter().map(|w| w.uri.as_str()).collect();
        return Err(DirError::Config(format!(
            "switchover needs {} to be the one writer; writers now: [{}] (see `dirbroker cluster status`)",
            from.uri,
            names.join(", ")
        )));
    }
    if !states.iter().any(|s| s.uri == to.uri && s.reachable && s.read_only.is_some()) {
        return Err(DirError::Unavailable { detail: format!("{} (or its cn=config) does not answer", to.uri) });
    }
    set_read_only(base, from, true).await?;
    let started = std::time::Instant::now();
    loop {
        let (a, b) = (snapshot(base, &from.uri).await?, snapshot(base, &to.uri).await?);
        if a == b {
            break;
        }
        if started.elapsed() > limit {
            set_read_only(base, from, false).await?;
            return Err(DirError::Unavailable {
                detail: format!(
                    "{} did not catch up with {} within {limit:?}; {} is the writer again",
                    to.uri, from.uri, from.uri
                ),
            });
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let caught_up_ms = started.elapsed().as_millis();
    set_read_only(base, to, false).await?;
    Ok(Switchover { from: from.uri.clone(), to: to.uri.clone(), caught_up_ms })
}

/// Make `to` the writer after an unplanned loss of the old one: refused
/// while any other provider still answers as writable (fence it first).
pub async fn promote(
    base: &DirectoryConfig,
    providers: &[ClusterProvider],
    to: &ClusterProvider,
) -> Result<(), DirError> {
    let states = status(base, providers).await;
    if let Some(w) = states.iter().find(|s| s.uri != to.uri && s.is_writer()) {
        return Err(DirError::Config(format!(
            "{} still takes writes: fence it first (`dirbroker cluster fence {}`), or use switchover",
            w.uri, w.uri
        )));
    }
    set_read_only(base, to, false).await
}
