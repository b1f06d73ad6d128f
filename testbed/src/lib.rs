//! A private OpenLDAP slapd started from the Debian `slapd` package, for
//! tests and for the quick start: its own directory, loopback port and ldapi
//! socket, cn=config built from stock Debian schema plus `schema/`, the ACLs,
//! service identities and the base entries.
//!
//! ```text
//!  start(): mkdir DIR ─► slapadd -n0 (cn=config) ─► slapd -d 0 ─► wait for ldapi
//!        ─► ldapadd openssh-lpk.ldif, dirbroker.ldif   (as an operator would)
//!        ─► ldapmodify acl.ldif, indexes.ldif
//!        ─► base entries + identities through the directory layer
//!  drop():  SIGTERM slapd, wait, remove DIR        (unless detached)
//! ```
//!
//! Each instance picks a free port, so test binaries run in parallel.

pub mod cluster;
pub mod harness;

use std::io::Write;
use std::net::TcpListener;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use dirbroker::directory::{Bind, DirError, Directory, DirectoryConfig, Dn, Layout, TlsSettings};
use dirbroker::schema;
use dirbroker::secret::{SecretString, read_secret_file, write_private_file};

const MARKER: &str = ".dirbroker-testbed";
const SCHEMA_DIR: &str = "/etc/ldap/schema";
const MODULE_DIR: &str = "/usr/lib/ldap";
const DATABASE_DN: &str = "olcDatabase={1}mdb,cn=config";
const SBIN: &[&str] = &["/usr/sbin", "/usr/bin", "/sbin", "/bin"];

#[derive(Debug, thiserror::Error)]
pub enum TestbedError {
    #[error("{tool} not found; install the Debian packages: apt-get install slapd ldap-utils")]
    MissingTool { tool: String },
    #[error("{0}")]
    Refused(String),
    #[error("{step} failed: {detail}")]
    Step { step: String, detail: String },
    #[error("I/O on {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error(transparent)]
    Directory(#[from] DirError),
}

type Result<T> = std::result::Result<T, TestbedError>;

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> TestbedError + '_ {
    move |source| TestbedError::Io { path: path.display().to_string(), source }
}

/// Which identity a directory handle binds as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Identity {
    /// The rootdn `cn=admin,SUFFIX`: bypasses ACLs.
    Admin,
    /// `cn=broker,ou=system,SUFFIX`: the broker's service identity.
    Broker,
    /// `cn=node-reader,ou=system,SUFFIX`: read-only, public keys only.
    NodeReader,
    Anonymous,
}

#[derive(Clone, Debug)]
pub struct TestbedOptions {
    /// Data directory; created, and removed on drop unless detached.
    pub dir: PathBuf,
    /// TCP port on 127.0.0.1; `None` picks a free one.
    pub port: Option<u16>,
    pub suffix: String,
    /// Load openssh-lpk, the dirbroker schema, ACLs, indexes and base entries.
    /// Off gives a stock slapd (core, cosine, inetorgperson, nis) to load them by hand.
    pub dirbroker_schema: bool,
    /// Also listen on ldaps:// and offer StartTLS, with a fresh CA and server certificate.
    pub tls: bool,
    /// Leave slapd running (in its own session) when the handle is dropped.
    pub detach: bool,
    /// Add the base entries, service identities and keyring. Off for a
    /// provider that joins a replicated cluster empty and is filled by
    /// replication (a second seeded copy would have other entryUUIDs).
    pub seed: bool,
}

impl TestbedOptions {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        TestbedOptions {
            dir: dir.into(),
            port: None,
            suffix: "dc=example,dc=org".into(),
            dirbroker_schema: true,
            tls: false,
            detach: false,
            seed: true,
        }
    }
}

/// Paths of the TLS material of a testbed started with `tls`.
#[derive(Clone, Debug)]
pub struct TestbedTls {
    pub ca_file: PathBuf,
    pub ldaps_port: u16,
}

/// A running slapd.
#[derive(Debug)]
pub struct Testbed {
    dir: PathBuf,
    port: u16,
    suffix: Dn,
    layout: Layout,
    child: Option<Child>,
    pid: i32,
    detach: bool,
    tls: Option<TestbedTls>,
    stopped: bool,
}

fn tool(name: &str) -> Result<PathBuf> {
    SBIN.iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| TestbedError::MissingTool { tool: name.to_string() })
}

/// Run a tool to completion; `input` goes to its stdin. Fails with its output.
fn run(step: &str, cmd: &mut Command, input: Option<&[u8]>) -> Result<String> {
    cmd.stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() });
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| TestbedError::Step { step: step.into(), detail: e.to_string() })?;
    if let (Some(data), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin.write_all(data).map_err(|e| TestbedError::Step { step: step.into(), detail: e.to_string() })?;
    }
    let out = child.wait_with_output().map_err(|e| TestbedError::Step { step: step.into(), detail: e.to_string() })?;
    if !out.status.success() {
        return Err(TestbedError::Step {
            step: step.into(),
            detail: format!(
                "{}: {}{}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim(),
                String::from_utf8_lossy(&out.stdout).trim()
            ),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `ldapi://` URL of a socket path (percent-encoded).
pub fn ldapi_url(socket: &Path) -> String {
    let mut out = String::from("ldapi://");
    for b in socket.as_os_str().as_encoded_bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(b) {
            out.push(char::from(*b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A loopback TCP port that is free now, for a server started a moment later.
/// It is drawn below the kernel's ephemeral range
/// (`net.ipv4.ip_local_port_range`), from which `bind(…:0)` and outgoing
/// connections take theirs: another process (a test's broker listening on
/// port 0, any client's connection) cannot be handed this port before our
/// server binds it. Falls back to an ephemeral port if that range is too small.
pub fn free_port() -> std::io::Result<u16> {
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let (from, to) = (10_000u16, ephemeral_low.saturating_sub(1));
    if to > from.saturating_add(1000) {
        for _ in 0..200 {
            let port = rand::random_range(from..=to);
            if TcpListener::bind(("127.0.0.1", port)).is_ok() {
                return Ok(port);
            }
        }
    }
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A path that is safe to write into cn=config LDIF: absolute, UTF-8, no control characters.
fn plain_path(p: &Path) -> Result<&str> {
    let s = p.to_str().ok_or_else(|| TestbedError::Refused(format!("{} is not UTF-8", p.display())))?;
    if !p.is_absolute() || s.chars().any(char::is_control) {
        return Err(TestbedError::Refused(format!("{s:?} must be an absolute path without control characters")));
    }
    Ok(s)
}

/// The pid in DIR/slapd.pid if that process is alive and is slapd.
pub fn running_pid(dir: &Path) -> Option<i32> {
    let text = std::fs::read_to_string(dir.join("slapd.pid")).ok()?;
    let pid: i32 = text.trim().parse().ok()?;
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    (comm.trim() == "slapd").then_some(pid)
}

fn wait_gone(pid: i32, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if kill(Pid::from_raw(pid), None).is_err() {
            return true;
        }
        dirbroker::clock::sleep(Duration::from_millis(20));
    }
    false
}

/// Remove `dir` only if it is ours (marker) or empty.
fn remove_dir(dir: &Path) -> Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    let empty = std::fs::read_dir(dir).map_err(io_err(dir))?.next().is_none();
    if !empty && !dir.join(MARKER).exists() {
        return Err(TestbedError::Refused(format!(
            "{} is not empty and was not made by dirbroker testbed; not touching it",
            dir.display()
        )));
    }
    std::fs::remove_dir_all(dir).map_err(io_err(dir))
}

/// Stop the slapd of a detached testbed in `dir` and remove the directory.
pub fn stop_dir(dir: &Path) -> Result<bool> {
    if !dir.join(MARKER).exists() {
        return Ok(false);
    }
    let was_running = match running_pid(dir) {
        Some(pid) => {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
            if !wait_gone(pid, Duration::from_secs(10)) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                wait_gone(pid, Duration::from_secs(2));
            }
            true
        }
        None => false,
    };
    remove_dir(dir)?;
    Ok(was_running)
}

impl Testbed {
    /// Create and start a fresh instance; see the module docs for the steps.
    pub async fn start(opts: TestbedOptions) -> Result<Testbed> {
        let slapd = tool("slapd")?;
        let slapadd = tool("slapadd")?;
        for t in ["ldapadd", "ldapmodify", "ldapwhoami", "slappasswd"] {
            tool(t)?;
        }
        let suffix = Dn::parse(&opts.suffix)?;
        let layout = Layout::new(suffix.clone())?;
        let dir = std::path::absolute(&opts.dir).map_err(io_err(&opts.dir))?;
        plain_path(&dir)?;
        if let Some(pid) = running_pid(&dir) {
            return Err(TestbedError::Refused(format!(
                "a testbed slapd (pid {pid}) already runs in {}; stop it with: dirbroker testbed down --dir {}",
                dir.display(),
                dir.display()
            )));
        }
        remove_dir(&dir)?;
        if dir.join("ldapi").as_os_str().len() > 100 {
            return Err(TestbedError::Refused(format!("{} is too long for a unix socket path", dir.display())));
        }
        for sub in ["", "slapd.d", "data", "schema"] {
            let p = dir.join(sub);
            std::fs::create_dir_all(&p).map_err(io_err(&p))?;
        }
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).map_err(io_err(&dir))?;
        std::fs::write(dir.join(MARKER), b"made by dirbroker testbed\n").map_err(io_err(&dir))?;
        let meta = std::fs::metadata(&dir).map_err(io_err(&dir))?;
        let external = format!("gidNumber={}+uidNumber={},cn=peercred,cn=external,cn=auth", meta.gid(), meta.uid());

        for file in ["admin.pw", "broker.pw", "node-reader.pw"] {
            let p = dir.join(file);
            write_private_file(&p, SecretString::generate(24).expose().as_bytes()).map_err(io_err(&p))?;
        }
        let root_hash = service_hash(&dir.join("admin.pw"))?;

        let mut tls = None;
        if opts.tls {
            tls = Some(write_tls_material(&dir)?);
        }
        let config = config_ldif(&dir, &suffix, root_hash.trim(), &external, tls.is_some())?;
        let config_path = dir.join("config.ldif");
        std::fs::write(&config_path, config).map_err(io_err(&config_path))?;
        run(
            "slapadd of cn=config",
            Command::new(&slapadd).arg("-n0").arg("-F").arg(dir.join("slapd.d")).arg("-l").arg(&config_path),
            None,
        )?;

        let ldapi = ldapi_url(&dir.join("ldapi"));
        let mut last_err = None;
        for _attempt in 0..5 {
            let port = match opts.port {
                Some(p) => p,
                None => free_port().map_err(io_err(Path::new("127.0.0.1")))?,
            };
            let ldaps_port = match &tls {
                Some(_) => Some(free_port().map_err(io_err(Path::new("127.0.0.1")))?),
                None => None,
            };
            let mut urls = format!("ldap://127.0.0.1:{port}/ {ldapi}/");
            if let Some(p) = ldaps_port {
                urls.push_str(&format!(" ldaps://127.0.0.1:{p}/"));
            }
            let log_path = dir.join("slapd.log");
            let log = std::fs::File::create(&log_path).map_err(io_err(&log_path))?;
            let log2 = log.try_clone().map_err(io_err(&log_path))?;
            let mut cmd = Command::new(&slapd);
            cmd.args(["-d", "0", "-h", &urls, "-F"])
                .arg(dir.join("slapd.d"))
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(log2);
            if opts.detach {
                cmd.process_group(0);
            }
            let child =
                cmd.spawn().map_err(|e| TestbedError::Step { step: "start slapd".into(), detail: e.to_string() })?;
            let pid = i32::try_from(child.id()).unwrap_or(i32::MAX);
            let mut bed = Testbed {
                dir: dir.clone(),
                port,
                suffix: suffix.clone(),
                layout: layout.clone(),
                child: Some(child),
                pid,
                detach: opts.detach,
                tls: tls.as_ref().zip(ldaps_port).map(|(ca, p)| TestbedTls { ca_file: ca.clone(), ldaps_port: p }),
                stopped: false,
            };
            match bed.wait_ready(&ldapi).await {
                Ok(()) => {
                    bed.provision(&opts, &ldapi).await?;
                    return Ok(bed);
                }
                Err(e) => {
                    bed.kill_child();
                    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                    let port_clash = log.contains("Address already in use");
                    last_err = Some(e);
                    if !port_clash || opts.port.is_some() {
                        break;
                    }
                }
            }
        }
        let err = last_err.unwrap_or_else(|| TestbedError::Refused("slapd did not start".into()));
        // Keep the directory for a post-mortem only when detached; tests clean up.
        if !opts.detach {
            let _ = remove_dir(&dir);
        }
        Err(err)
    }

    /// Poll until slapd answers on ldapi (up to 15 s) or exits.
    async fn wait_ready(&mut self, ldapi: &str) -> Result<()> {
        let whoami = tool("ldapwhoami")?;
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                let log = std::fs::read_to_string(self.dir.join("slapd.log")).unwrap_or_default();
                return Err(TestbedError::Step {
                    step: "start slapd".into(),
                    detail: format!("slapd exited with {status}: {}", log.trim()),
                });
            }
            let ok = Command::new(&whoami)
                .args(["-Q", "-Y", "EXTERNAL", "-H", ldapi])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(TestbedError::Step {
                    step: "start slapd".into(),
                    detail: "no answer on ldapi within 15 s".into(),
                });
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Load our schema files as an operator would, then the base entries.
    async fn provision(&mut self, opts: &TestbedOptions, ldapi: &str) -> Result<()> {
        if !opts.dirbroker_schema {
            return Ok(());
        }
        let suffix = self.suffix.to_string();
        let files = [
            ("openssh-lpk.ldif", schema::OPENSSH_LPK_LDIF.to_string(), true),
            ("dirbroker.ldif", schema::DIRBROKER_LDIF.to_string(), true),
            ("acl.ldif", schema::acl_ldif_for(&suffix, DATABASE_DN), false),
            ("indexes.ldif", schema::indexes_ldif_for(DATABASE_DN), false),
            ("unique.ldif", schema::unique_ldif_for(&suffix, DATABASE_DN, has_module("unique")), false),
        ];
        for (name, text, add) in files {
            let path = self.dir.join("schema").join(name);
            std::fs::write(&path, text).map_err(io_err(&path))?;
            self.ldap_tool(if add { "ldapadd" } else { "ldapmodify" }, &path, ldapi)?;
        }
        if !opts.seed {
            return Ok(());
        }
        let admin = Directory::connect(self.directory_config(Identity::Admin)?).await?;
        let (attr, value) = self.suffix.first_rdn().ok_or_else(|| TestbedError::Refused("empty suffix".into()))?;
        let top: Vec<(String, Vec<Vec<u8>>)> = match attr.to_ascii_lowercase().as_str() {
            "dc" => vec![
                ("objectClass".into(), vec![b"dcObject".to_vec(), b"organization".to_vec()]),
                ("dc".into(), vec![value.clone().into_bytes()]),
                ("o".into(), vec![value.into_bytes()]),
            ],
            "o" => vec![("objectClass".into(), vec![b"organization".to_vec()]), ("o".into(), vec![value.into_bytes()])],
            other => {
                return Err(TestbedError::Refused(format!("suffix must start with dc= or o=, not {other}=")));
            }
        };
        admin.add(&self.suffix, top).await?;
        for ou in self.layout.units() {
            let name = ou.first_rdn().map(|(_, v)| v).unwrap_or_default();
            admin
                .add(
                    ou,
                    vec![
                        ("objectClass".into(), vec![b"organizationalUnit".to_vec()]),
                        ("ou".into(), vec![name.into_bytes()]),
                    ],
                )
                .await?;
        }
        for (dn, file, what) in [
            (self.layout.broker_dn()?, "broker.pw", "dirbroker broker service identity"),
            (self.layout.node_reader_dn()?, "node-reader.pw", "dirbroker read-only node identity"),
        ] {
            let cn = dn.first_rdn().map(|(_, v)| v).unwrap_or_default();
            admin
                .add(
                    &dn,
                    vec![
                        ("objectClass".into(), vec![b"applicationProcess".to_vec(), b"simpleSecurityObject".to_vec()]),
                        ("cn".into(), vec![cn.into_bytes()]),
                        ("description".into(), vec![what.as_bytes().to_vec()]),
                        ("userPassword".into(), vec![service_hash(&self.dir.join(file))?.into_bytes()]),
                    ],
                )
                .await?;
        }
        admin.close();
        dirbroker::seal::Keyring::create(&self.keyring_file())
            .map_err(|e| TestbedError::Step { step: "create the master keyring".into(), detail: e.to_string() })?;
        self.write_client_config()?;
        Ok(())
    }

    fn ldap_tool(&self, name: &str, file: &Path, ldapi: &str) -> Result<()> {
        run(
            &format!("{name} {}", file.display()),
            Command::new(tool(name)?).args(["-Q", "-Y", "EXTERNAL", "-H", ldapi, "-f"]).arg(file),
            None,
        )
        .map(drop)
    }

    /// `DIR/dirbroker.toml` (bound as the broker) and `DIR/node-reader.toml`
    /// (bound as the read-only node identity), for the CLI.
    fn write_client_config(&self) -> Result<()> {
        for (file, who, pw) in [
            ("dirbroker.toml", self.layout.broker_dn()?, "broker.pw"),
            ("node-reader.toml", self.layout.node_reader_dn()?, "node-reader.pw"),
        ] {
            let path = self.dir.join(file);
            let mut text = format!(
                "# Written by `dirbroker testbed up` for the slapd in this directory.\n\
                 [directory]\nuris = [{uri:?}]\nbase_dn = {base:?}\nbind_dn = {bind:?}\nbind_password_file = {pw:?}\n",
                uri = self.client_uri(),
                base = self.suffix.as_str(),
                bind = who.as_str(),
                pw = self.dir.join(pw).display().to_string(),
            );
            if let Some(tls) = &self.tls {
                text.push_str(&format!("\n[directory.tls]\nca_file = {:?}\n", tls.ca_file.display().to_string()));
            }
            if file == "dirbroker.toml" {
                let keys = self.keyring_file();
                text.push_str(&format!("\n[secrets]\nkeyring_file = {:?}\n", keys.display().to_string()));
                text.push_str(&format!(
                    "\n[ca]\nkey_file = {:?}\ncert_file = {:?}\n",
                    self.dir.join("ca.key").display().to_string(),
                    self.dir.join("ca.pem").display().to_string()
                ));
                // Last, so tests can add keys (ams_url, …) by appending lines.
                text.push_str(&format!(
                    "\n[sso]\nsigning_key_file = {:?}\n",
                    self.dir.join("ticket-signing.pem").display().to_string()
                ));
            }
            write_private_file(&path, text.as_bytes()).map_err(io_err(&path))?;
        }
        Ok(())
    }

    /// The broker master keyring made for this testbed (0600).
    pub fn keyring_file(&self) -> PathBuf {
        self.dir.join("master.keys")
    }

    /// The URI clients should use: ldaps:// when TLS is on, else ldap://.
    pub fn client_uri(&self) -> String {
        match &self.tls {
            Some(tls) => format!("ldaps://127.0.0.1:{}", tls.ldaps_port),
            None => self.uri(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn pid(&self) -> i32 {
        self.pid
    }

    pub fn uri(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.port)
    }

    pub fn ldapi_uri(&self) -> String {
        ldapi_url(&self.dir.join("ldapi"))
    }

    pub fn tls(&self) -> Option<&TestbedTls> {
        self.tls.as_ref()
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    pub fn suffix(&self) -> &Dn {
        &self.suffix
    }

    /// Path of the 0600 file holding an identity's password.
    pub fn password_file(&self, who: Identity) -> Option<PathBuf> {
        match who {
            Identity::Admin => Some(self.dir.join("admin.pw")),
            Identity::Broker => Some(self.dir.join("broker.pw")),
            Identity::NodeReader => Some(self.dir.join("node-reader.pw")),
            Identity::Anonymous => None,
        }
    }

    pub fn bind_dn(&self, who: Identity) -> Result<Option<Dn>> {
        Ok(match who {
            Identity::Admin => Some(self.suffix.child("cn", "admin")?),
            Identity::Broker => Some(self.layout.broker_dn()?),
            Identity::NodeReader => Some(self.layout.node_reader_dn()?),
            Identity::Anonymous => None,
        })
    }

    /// A directory configuration reaching this instance as `who`, over
    /// ldaps:// with the testbed CA pinned when TLS is on, else ldap://.
    pub fn directory_config(&self, who: Identity) -> Result<DirectoryConfig> {
        let bind = match (self.bind_dn(who)?, self.password_file(who)) {
            (Some(dn), Some(file)) => Bind::Simple {
                dn: dn.to_string(),
                password: read_secret_file(&file).map_err(|e| TestbedError::Refused(e.to_string()))?,
            },
            _ => Bind::Anonymous,
        };
        let mut cfg = DirectoryConfig::new(vec![self.client_uri()], self.suffix.to_string(), bind);
        cfg.connect_timeout = Duration::from_secs(2);
        cfg.op_timeout = Duration::from_secs(5);
        if let Some(tls) = &self.tls {
            cfg.tls = TlsSettings { starttls: false, ca_file: Some(tls.ca_file.clone()) };
        }
        Ok(cfg)
    }

    /// A handle on a slapd already running in `dir` (started detached by
    /// `dirbroker testbed up`) on 127.0.0.1:`port` without TLS; the handle
    /// leaves it running when dropped.
    pub fn attach(dir: &Path, port: u16, suffix: &str) -> Result<Testbed> {
        let pid = running_pid(dir)
            .ok_or_else(|| TestbedError::Refused(format!("no slapd of a testbed runs in {}", dir.display())))?;
        let suffix = Dn::parse(suffix)?;
        let layout = Layout::new(suffix.clone())?;
        Ok(Testbed {
            dir: dir.to_path_buf(),
            port,
            suffix,
            layout,
            child: None,
            pid,
            detach: true,
            tls: None,
            stopped: false,
        })
    }

    /// Send a signal to slapd (tests use SIGSTOP/SIGCONT to play a hung server).
    pub fn signal(&self, sig: Signal) -> Result<()> {
        kill(Pid::from_raw(self.pid), sig)
            .map_err(|e| TestbedError::Step { step: format!("signal {sig}"), detail: e.to_string() })
    }

    fn kill_child(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = kill(Pid::from_raw(self.pid), Signal::SIGCONT);
            let _ = kill(Pid::from_raw(self.pid), Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                match child.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if Instant::now() > deadline => {
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                    Ok(None) => dirbroker::clock::sleep(Duration::from_millis(20)),
                }
            }
        }
    }

    /// Stop slapd now (the data directory stays until drop).
    pub fn stop(&mut self) {
        self.kill_child();
        self.stopped = true;
    }

    /// Start slapd again on the same port and data (after [`Testbed::stop`]).
    pub async fn restart(&mut self) -> Result<()> {
        self.stop();
        let ldapi = self.ldapi_uri();
        let mut urls = format!("ldap://127.0.0.1:{}/ {ldapi}/", self.port);
        if let Some(tls) = &self.tls {
            urls.push_str(&format!(" ldaps://127.0.0.1:{}/", tls.ldaps_port));
        }
        let log_path = self.dir.join("slapd.log");
        let log = std::fs::OpenOptions::new().append(true).open(&log_path).map_err(io_err(&log_path))?;
        let log2 = log.try_clone().map_err(io_err(&log_path))?;
        let child = Command::new(tool("slapd")?)
            .args(["-d", "0", "-h", &urls, "-F"])
            .arg(self.dir.join("slapd.d"))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(|e| TestbedError::Step { step: "restart slapd".into(), detail: e.to_string() })?;
        self.pid = i32::try_from(child.id()).unwrap_or(i32::MAX);
        self.child = Some(child);
        self.stopped = false;
        self.wait_ready(&ldapi).await
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        if self.detach {
            // Let go of the child without killing it: slapd keeps running.
            self.child.take();
            return;
        }
        self.kill_child();
        let _ = remove_dir(&self.dir);
    }
}

fn has_module(name: &str) -> bool {
    Path::new(MODULE_DIR).join(format!("{name}.so")).exists()
}

/// Hash a service identity's password (from its file, never argv) for
/// userPassword/olcRootPW. These passwords are long random strings, so a
/// salted SHA-512 is enough and keeps binds cheap; people's passwords go
/// through Password Modify and slapd's slow olcPasswordHash (Argon2) instead.
fn service_hash(file: &Path) -> Result<String> {
    let mut cmd = Command::new(tool("slappasswd")?);
    if has_module("pw-sha2") {
        cmd.args(["-o", &format!("module-path={MODULE_DIR}"), "-o", "module-load=pw-sha2", "-h", "{SSHA512}"]);
    } else {
        cmd.args(["-h", "{SSHA}"]);
    }
    let out = run("slappasswd", cmd.arg("-T").arg(file), None)?;
    Ok(out.trim().to_string())
}

fn config_ldif(dir: &Path, suffix: &Dn, root_hash: &str, external: &str, tls: bool) -> Result<String> {
    let d = plain_path(dir)?;
    let argon2 = has_module("argon2");
    let mut modules = String::from("olcModuleLoad: back_mdb\n");
    if argon2 {
        modules.push_str("olcModuleLoad: argon2\n");
    }
    if has_module("pw-sha2") {
        modules.push_str("olcModuleLoad: pw-sha2\n");
    }
    let hash = if argon2 { "{ARGON2}" } else { "{SSHA}" };
    let tls_lines = if tls {
        format!(
            "olcTLSCACertificateFile: {d}/tls/ca.pem\nolcTLSCertificateFile: {d}/tls/server.pem\n\
             olcTLSCertificateKeyFile: {d}/tls/server.key\n"
        )
    } else {
        String::new()
    };
    let mut schemas = String::new();
    for name in ["core", "cosine", "inetorgperson", "nis"] {
        schemas.push_str(&format!("include: file://{SCHEMA_DIR}/{name}.ldif\n\n"));
    }
    let broker = Layout::new(suffix.clone())?.broker_dn()?;
    Ok(format!(
        "dn: cn=config
objectClass: olcGlobal
cn: config
olcPidFile: {d}/slapd.pid
olcArgsFile: {d}/slapd.args
olcLogLevel: none
olcToolThreads: 1
{tls_lines}
dn: cn=module{{0}},cn=config
objectClass: olcModuleList
cn: module{{0}}
olcModulePath: {MODULE_DIR}
{modules}
dn: cn=schema,cn=config
objectClass: olcSchemaConfig
cn: schema

{schemas}dn: olcDatabase={{-1}}frontend,cn=config
objectClass: olcDatabaseConfig
objectClass: olcFrontendConfig
olcDatabase: {{-1}}frontend
olcPasswordHash: {hash}
olcSizeLimit: 500
olcAccess: {{0}}to dn.base=\"\" by * read
olcAccess: {{1}}to dn.base=\"cn=subschema\" by * read

dn: olcDatabase={{0}}config,cn=config
objectClass: olcDatabaseConfig
olcDatabase: {{0}}config
olcRootDN: {external}
olcAccess: {{0}}to * by dn.exact={external} manage by * none

dn: {DATABASE_DN}
objectClass: olcDatabaseConfig
objectClass: olcMdbConfig
olcDatabase: {{1}}mdb
olcSuffix: {suffix}
olcRootDN: cn=admin,{suffix}
olcRootPW: {root_hash}
olcDbDirectory: {d}/data
olcDbMaxSize: 8589934592
olcDbIndex: objectClass eq
olcLimits: {{0}}dn.exact=\"{broker}\" size=unlimited time=unlimited
olcLastMod: TRUE
olcAccess: {{0}}to * by * none
"
    ))
}

/// A CA and a server certificate for 127.0.0.1/localhost, in DIR/tls.
fn write_tls_material(dir: &Path) -> Result<PathBuf> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
    let tls_dir = dir.join("tls");
    std::fs::create_dir_all(&tls_dir).map_err(io_err(&tls_dir))?;
    let fail = |e: rcgen::Error| TestbedError::Step { step: "make TLS certificates".into(), detail: e.to_string() };
    let now = dirbroker::clock::now();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(fail)?;
    ca_params.distinguished_name.push(DnType::CommonName, "dirbroker testbed CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca_params.not_before = now - time::Duration::hours(1);
    ca_params.not_after = now + time::Duration::days(30);
    let ca_key = KeyPair::generate().map_err(fail)?;
    let ca_cert = ca_params.self_signed(&ca_key).map_err(fail)?;
    let mut leaf = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).map_err(fail)?;
    leaf.distinguished_name.push(DnType::CommonName, "127.0.0.1");
    leaf.not_before = ca_params.not_before;
    leaf.not_after = ca_params.not_after;
    let leaf_key = KeyPair::generate().map_err(fail)?;
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer).map_err(fail)?;
    let ca_file = tls_dir.join("ca.pem");
    std::fs::write(&ca_file, ca_cert.pem()).map_err(io_err(&ca_file))?;
    let server = tls_dir.join("server.pem");
    std::fs::write(&server, leaf_cert.pem()).map_err(io_err(&server))?;
    let key = tls_dir.join("server.key");
    write_private_file(&key, leaf_key.serialize_pem().as_bytes()).map_err(io_err(&key))?;
    Ok(ca_file)
}
