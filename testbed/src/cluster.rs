//! Several slapd providers replicating one directory with OpenLDAP's own
//! multi-provider syncrepl: `dirbroker testbed up --providers N` and the
//! cluster tests. Facts behind each step: `docs/replication.md`.
//!
//! ```text
//!  p1 (seeded: base entries, identities, keyring)      ◄──syncrepl──►  p2, p3 … (started empty)
//!  every provider: schema, ACLs, indexes, serverID k, syncprov, the
//!  replicator identity's read rule and limits, one olcSyncrepl per peer
//! ```
//!
//! A provider joins empty: it consumes from every running provider until it
//! holds the same entries as p1, then every other provider consumes from it
//! too. Only p1 is seeded, because two copies seeded apart would carry other
//! entryUUIDs for the same DNs and replication would wedge. cn=config is not
//! replicated: the schema, ACL and index files go to every provider.
//!
//! The replicator (`cn=replicator,ou=system,SUFFIX`) needs read access to
//! everything (rule {0}, before the dirbroker rules) and no size limit:
//! without the rule replication silently leaves out what it cannot read,
//! without the limit it stops at 500 entries, in both cases with no log line.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use dirbroker::directory::{DirError, Directory, DirectoryConfig, Dn, Filter, Scope};
use dirbroker::secret::{SecretString, read_secret_file, write_private_file};
use nix::sys::signal::Signal;

use std::os::unix::fs::PermissionsExt;

use crate::{
    DATABASE_DN, Identity, MARKER, Result, Testbed, TestbedError, TestbedOptions, io_err, remove_dir, run, running_pid,
    service_hash, stop_dir, tool,
};

/// What to build.
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    /// Holds one directory per provider (`p1`, `p2`, …) and the replicator's password.
    pub dir: PathBuf,
    pub providers: usize,
    /// Make every provider but the writer (p1) read-only (`olcReadOnly`):
    /// slapd then refuses client writes there (result 53) while replication
    /// still flows in, so there is exactly one writer.
    pub single_writer: bool,
    /// Leave the slapds running when the handle is dropped.
    pub detach: bool,
}

impl ClusterOptions {
    pub fn new(dir: impl Into<PathBuf>, providers: usize) -> Self {
        ClusterOptions { dir: dir.into(), providers, single_writer: true, detach: false }
    }
}

/// Running providers of one replicated directory.
#[derive(Debug)]
pub struct Cluster {
    dir: PathBuf,
    nodes: Vec<Testbed>,
    detach: bool,
}

const REPLICATOR_PW: &str = "replicator.pw";
const READY: Duration = Duration::from_secs(60);

impl Cluster {
    /// Start p1 seeded, then join the others one by one.
    pub async fn start(opts: ClusterOptions) -> Result<Cluster> {
        if !(1..=9).contains(&opts.providers) {
            return Err(TestbedError::Refused(format!("providers must be 1 to 9, not {}", opts.providers)));
        }
        let dir = std::path::absolute(&opts.dir).map_err(io_err(&opts.dir))?;
        if let Some(pid) = provider_dirs(&dir).iter().find_map(|d| running_pid(d)) {
            return Err(TestbedError::Refused(format!(
                "a provider of a testbed (pid {pid}) already runs in {}; stop it with: dirbroker testbed down --dir {}",
                dir.display(),
                dir.display()
            )));
        }
        remove_dir(&dir)?;
        std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).map_err(io_err(&dir))?;
        std::fs::write(dir.join(MARKER), b"made by dirbroker testbed (replicated)\n").map_err(io_err(&dir))?;
        let pw = dir.join(REPLICATOR_PW);
        write_private_file(&pw, SecretString::generate(24).expose().as_bytes()).map_err(io_err(&pw))?;
        let mut first = TestbedOptions::new(dir.join("p1"));
        first.detach = opts.detach;
        let p1 = Testbed::start(first).await?;
        let mut cluster = Cluster { dir, nodes: vec![p1], detach: opts.detach };
        cluster.make_provider(0)?;
        cluster.add_replicator().await?;
        for _ in 1..opts.providers {
            cluster.join().await?;
        }
        if opts.single_writer {
            for k in 1..cluster.nodes.len() {
                cluster.set_read_only(k, true)?;
            }
        }
        cluster.write_client_config()?;
        Ok(cluster)
    }

    /// The cluster `dirbroker testbed up --providers N` left running in
    /// `dir` (every provider must run), to join one more to it.
    pub fn attach(dir: &Path) -> Result<Cluster> {
        let dir = std::path::absolute(dir).map_err(io_err(dir))?;
        if !is_cluster_dir(&dir) {
            return Err(TestbedError::Refused(format!("{} holds no replicated testbed", dir.display())));
        }
        let config = dir.join("dirbroker.toml");
        let config = dirbroker::config::Config::load(&config)
            .map_err(|e| TestbedError::Refused(format!("{}: {e}", config.display())))?;
        let uris: Vec<String> = config.cluster.providers.iter().map(|p| p.uri.clone()).collect();
        let dirs = provider_dirs(&dir);
        if uris.len() != dirs.len() {
            return Err(TestbedError::Refused(format!(
                "{} lists {} providers and holds {}",
                dir.display(),
                uris.len(),
                dirs.len()
            )));
        }
        let mut nodes = Vec::new();
        for (uri, node_dir) in uris.iter().zip(&dirs) {
            let port = uri
                .strip_prefix("ldap://127.0.0.1:")
                .and_then(|p| p.trim_end_matches('/').parse::<u16>().ok())
                .ok_or_else(|| TestbedError::Refused(format!("{uri}: not a testbed provider's URI")))?;
            nodes.push(Testbed::attach(node_dir, port, &config.directory.base_dn)?);
        }
        Ok(Cluster { dir, nodes, detach: true })
    }

    /// Start one more provider empty, fill it by replication from every
    /// running provider, then let every provider consume from it. Returns its index.
    pub async fn join(&mut self) -> Result<usize> {
        let k = self.nodes.len();
        let mut opts = TestbedOptions::new(self.dir.join(format!("p{}", k + 1)));
        opts.seed = false;
        opts.detach = self.detach;
        let node = Testbed::start(opts).await?;
        self.nodes.push(node);
        self.make_provider(k)?;
        let peers: Vec<usize> = (0..k).collect();
        let mut ldif = format!("dn: {DATABASE_DN}\nchangetype: modify\nadd: olcSyncrepl\n");
        for &p in &peers {
            ldif.push_str(&format!("olcSyncrepl: {}\n", self.syncrepl_value(p)?));
        }
        ldif.push_str("-\nreplace: olcMultiProvider\nolcMultiProvider: TRUE\n");
        self.config_modify(k, &ldif)?;
        self.wait_converged(READY).await?;
        for p in peers {
            let multi = if k == 1 { "-\nreplace: olcMultiProvider\nolcMultiProvider: TRUE\n" } else { "" };
            let ldif = format!(
                "dn: {DATABASE_DN}\nchangetype: modify\nadd: olcSyncrepl\nolcSyncrepl: {}\n{multi}",
                self.syncrepl_value(k)?
            );
            self.config_modify(p, &ldif)?;
        }
        self.write_client_config()?;
        Ok(k)
    }

    /// serverID, syncprov and the replicator's read rule and limits (live, through cn=config).
    fn make_provider(&self, k: usize) -> Result<()> {
        let replicator = self.replicator_dn()?;
        self.config_modify(
            k,
            "dn: cn=module{0},cn=config\nchangetype: modify\nadd: olcModuleLoad\nolcModuleLoad: syncprov\n",
        )?;
        self.config_modify(
            k,
            &format!("dn: cn=config\nchangetype: modify\nreplace: olcServerID\nolcServerID: {}\n", k + 1),
        )?;
        self.config_modify(
            k,
            &format!(
                "dn: {DATABASE_DN}\nchangetype: modify\nadd: olcAccess\n\
                 olcAccess: {{0}}to * by dn.exact=\"{replicator}\" read by * break\n-\n\
                 add: olcLimits\nolcLimits: dn.exact=\"{replicator}\" size=unlimited time=unlimited\n"
            ),
        )?;
        self.config_modify(
            k,
            &format!(
                "dn: olcOverlay=syncprov,{DATABASE_DN}\nchangetype: add\nobjectClass: olcOverlayConfig\n\
                 objectClass: olcSyncProvConfig\nolcOverlay: syncprov\nolcSpCheckpoint: 100 1\n"
            ),
        )
    }

    /// The replicator identity, on p1 (replication brings it to the others).
    async fn add_replicator(&self) -> Result<()> {
        let dn = self.replicator_dn()?;
        let admin = Directory::connect(self.node(0)?.directory_config(Identity::Admin)?).await?;
        admin
            .add(
                &dn,
                vec![
                    ("objectClass".into(), vec![b"applicationProcess".to_vec(), b"simpleSecurityObject".to_vec()]),
                    ("cn".into(), vec![b"replicator".to_vec()]),
                    ("description".into(), vec![b"syncrepl replication identity (reads everything)".to_vec()]),
                    ("userPassword".into(), vec![service_hash(&self.dir.join(REPLICATOR_PW))?.into_bytes()]),
                ],
            )
            .await?;
        admin.close();
        Ok(())
    }

    fn replicator_dn(&self) -> Result<Dn> {
        Ok(self.node(0)?.layout().system.child("cn", "replicator")?)
    }

    /// The olcSyncrepl value with which a provider consumes from provider `peer`
    /// (plain syncrepl: no accesslog database; faster on small machines).
    fn syncrepl_value(&self, peer: usize) -> Result<String> {
        let node = self.node(peer)?;
        let pw = read_secret_file(&self.dir.join(REPLICATOR_PW)).map_err(|e| TestbedError::Refused(e.to_string()))?;
        Ok(format!(
            "rid={:03} provider={} bindmethod=simple binddn=\"{}\" credentials={} searchbase=\"{}\" \
             type=refreshAndPersist retry=\"1 +\" timeout=3 network-timeout=2 keepalive=60:3:10",
            peer + 1,
            node.uri(),
            self.replicator_dn()?,
            pw.expose(),
            node.suffix(),
        ))
    }

    /// Apply a cn=config change to provider `k` as root over ldapi (the
    /// LDIF goes on stdin: the replicator's password is in it).
    fn config_modify(&self, k: usize, ldif: &str) -> Result<()> {
        let node = self.node(k)?;
        run(
            &format!("cn=config change on p{}", k + 1),
            Command::new(tool("ldapmodify")?).args(["-Q", "-Y", "EXTERNAL", "-H", &node.ldapi_uri()]),
            Some(ldif.as_bytes()),
        )
        .map(drop)
    }

    /// Make provider `k` refuse client writes (`olcReadOnly`), or take them again.
    pub fn set_read_only(&self, k: usize, read_only: bool) -> Result<()> {
        let v = if read_only { "TRUE" } else { "FALSE" };
        self.config_modify(
            k,
            &format!("dn: {DATABASE_DN}\nchangetype: modify\nreplace: olcReadOnly\nolcReadOnly: {v}\n"),
        )
    }

    fn node(&self, k: usize) -> Result<&Testbed> {
        self.nodes.get(k).ok_or_else(|| TestbedError::Refused(format!("no provider p{}", k + 1)))
    }

    /// Provider `k` (0 is p1).
    pub fn provider(&self, k: usize) -> Option<&Testbed> {
        self.nodes.get(k)
    }

    pub fn provider_mut(&mut self, k: usize) -> Option<&mut Testbed> {
        self.nodes.get_mut(k)
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn uris(&self) -> Vec<String> {
        self.nodes.iter().map(Testbed::uri).collect()
    }

    /// A client configuration over every provider, bound as `who`; the
    /// service identities' passwords are p1's (the entries are p1's).
    pub fn directory_config(&self, who: Identity) -> Result<DirectoryConfig> {
        let mut cfg = self.node(0)?.directory_config(who)?;
        cfg.uris = self.uris();
        Ok(cfg)
    }

    /// The providers as `[[cluster.provider]]` lists them (cn=config over ldapi).
    pub fn cluster_providers(&self) -> Vec<dirbroker::config::ClusterProvider> {
        self.nodes
            .iter()
            .map(|n| dirbroker::config::ClusterProvider { uri: n.uri(), config_uri: Some(n.ldapi_uri()) })
            .collect()
    }

    /// Signal provider `k` (SIGSTOP plays a hung server, SIGKILL a crash).
    pub fn signal(&self, k: usize, sig: Signal) -> Result<()> {
        self.node(k)?.signal(sig)
    }

    /// `DIR/dirbroker.toml` and `DIR/node-reader.toml`: p1's files with every provider's URI.
    fn write_client_config(&self) -> Result<()> {
        let uris = format!("uris = {:?}\n", self.uris());
        // Before [sso], which stays last (tests append keys to it).
        let mut cluster = String::new();
        for node in &self.nodes {
            cluster.push_str(&format!(
                "[[cluster.provider]]\nuri = {:?}\nconfig_uri = {:?}\n\n",
                node.uri(),
                node.ldapi_uri()
            ));
        }
        for file in ["dirbroker.toml", "node-reader.toml"] {
            let src = self.node(0)?.dir().join(file);
            let text = std::fs::read_to_string(&src).map_err(io_err(&src))?;
            let text: String = text
                .lines()
                .map(|l| {
                    if l.starts_with("uris = ") {
                        uris.trim_end().to_string()
                    } else if l == "[sso]" && file == "dirbroker.toml" {
                        format!("{cluster}{l}")
                    } else {
                        l.to_string()
                    }
                })
                .collect::<Vec<_>>()
                .join("\n");
            let dst = self.dir.join(file);
            write_private_file(&dst, format!("{text}\n").as_bytes()).map_err(io_err(&dst))?;
        }
        Ok(())
    }

    /// Every entry of provider `k` as one sorted line of sorted attribute
    /// values (all user attributes, entryUUID and entryCSN), read as its rootdn.
    pub async fn dump(&self, k: usize) -> Result<Vec<String>> {
        let node = self.node(k)?;
        let mut cfg = node.directory_config(Identity::Admin)?;
        cfg.op_timeout = Duration::from_secs(30);
        let dir = Directory::connect_once(cfg).await?;
        let found = dir.search(node.suffix(), Scope::Subtree, &Filter::any(), &["*", "entryUUID", "entryCSN"]).await;
        dir.close();
        let entries = match found {
            Ok(entries) => entries,
            // A provider that joined empty has no suffix entry yet.
            Err(DirError::NotFound { .. }) => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        let mut lines: Vec<String> = entries
            .iter()
            .map(|e| {
                let mut attrs: Vec<String> = e
                    .attribute_names()
                    .flat_map(|a| {
                        let name = a.to_ascii_lowercase();
                        e.values(a).iter().map(move |v| format!("{name}: {}", hex_or_text(v))).collect::<Vec<_>>()
                    })
                    .collect();
                attrs.sort();
                format!("{}\t{}", e.dn.normalized(), attrs.join("\t"))
            })
            .collect();
        lines.sort();
        Ok(lines)
    }

    /// DNs of the entries in which some running provider differs from the
    /// first running one (equal contextCSNs do not prove equal data).
    pub async fn compare(&self) -> Result<Vec<String>> {
        let mut reference: Option<Vec<String>> = None;
        let mut differ = std::collections::BTreeSet::new();
        for k in 0..self.nodes.len() {
            if !self.is_running(k) {
                continue;
            }
            let lines = self.dump(k).await?;
            match &reference {
                None => reference = Some(lines),
                Some(r) => {
                    let a: std::collections::BTreeSet<&String> = r.iter().collect();
                    let b: std::collections::BTreeSet<&String> = lines.iter().collect();
                    for l in a.symmetric_difference(&b) {
                        differ.insert(l.split('\t').next().unwrap_or_default().to_string());
                    }
                }
            }
        }
        Ok(differ.into_iter().collect())
    }

    /// Wait until [`Cluster::compare`] finds no difference.
    pub async fn wait_converged(&self, limit: Duration) -> Result<Duration> {
        let started = Instant::now();
        loop {
            let differ = match self.compare().await {
                Ok(d) => d,
                Err(TestbedError::Directory(DirError::Unavailable { .. })) => {
                    vec!["(a provider did not answer)".into()]
                }
                Err(e) => return Err(e),
            };
            if differ.is_empty() {
                return Ok(started.elapsed());
            }
            if started.elapsed() > limit {
                return Err(TestbedError::Refused(format!(
                    "providers still differ after {limit:?} in {} entries, e.g. {}",
                    differ.len(),
                    differ.first().map(String::as_str).unwrap_or_default()
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Whether provider `k`'s slapd runs and is not stopped (SIGSTOP).
    pub fn is_running(&self, k: usize) -> bool {
        let Some(node) = self.nodes.get(k) else { return false };
        std::fs::read_to_string(format!("/proc/{}/stat", node.pid()))
            .ok()
            .and_then(|s| s.rsplit_once(") ").map(|(_, r)| r.chars().next()))
            .is_some_and(|state| matches!(state, Some('R' | 'S' | 'D')))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Each provider stops (unless detached) as its handle drops; then the
        // cluster's own files go.
        self.nodes.clear();
        if !self.detach {
            let _ = remove_dir(&self.dir);
        }
    }
}

/// The provider directories (`p1`, `p2`, …) of a cluster made in `dir`.
pub fn provider_dirs(dir: &Path) -> Vec<PathBuf> {
    (1..=9).map(|k| dir.join(format!("p{k}"))).take_while(|d| d.join(MARKER).exists()).collect()
}

/// Whether `dir` holds a cluster (rather than one testbed slapd).
pub fn is_cluster_dir(dir: &Path) -> bool {
    !provider_dirs(dir).is_empty()
}

/// Stop every provider of a detached cluster in `dir` and remove it;
/// returns how many were running.
pub fn stop_cluster_dir(dir: &Path) -> Result<usize> {
    let mut stopped = 0;
    for d in provider_dirs(dir) {
        if stop_dir(&d)? {
            stopped += 1;
        }
    }
    remove_dir(dir)?;
    Ok(stopped)
}

fn hex_or_text(v: &[u8]) -> String {
    match std::str::from_utf8(v) {
        Ok(s) if !s.contains(['\t', '\n']) => s.to_string(),
        _ => v.iter().map(|b| format!("{b:02x}")).collect(),
    }
}
