//! The one test harness, shared by every test suite (the CLI's and the
//! end-to-end tests): a real slapd per test ([`Bed`]), directory handles bound
//! as each identity, our daemons ([`Daemon`]), free ports, and the real
//! OpenSSH pieces ([`openssh`]: a private sshd, local accounts, binaries
//! installed where sshd accepts them), and SSSD as a judge in its own mount
//! namespace ([`sssd`]).

// Test support: failing loudly is the point here.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

pub mod chromium;
pub mod openssh;
pub mod sssd;

use std::path::PathBuf;
use std::process::{Command, Output};

use dirbroker::directory::Directory;

use crate::{Identity, Testbed, TestbedOptions};

/// A `[serve]` section on any free loopback port with the certificate and
/// key that `dirbroker ca issue broker … --out CERT_DIR` wrote, then `extra`
/// lines (e.g. `crl_refresh_s = 1\n`).
pub fn serve_section(cert_dir: &std::path::Path, extra: &str) -> String {
    format!(
        "\n[serve]\nlisten = \"127.0.0.1:0\"\ncert_file = {:?}\nkey_file = {:?}\n{extra}",
        cert_dir.join("cert.pem").display().to_string(),
        cert_dir.join("key.pem").display().to_string(),
    )
}

/// A fresh temporary directory for a testbed; short, so the ldapi socket path fits.
pub fn scratch_dir() -> tempfile::TempDir {
    #[allow(clippy::expect_used)]
    tempfile::Builder::new().prefix("dbt").tempdir_in("/tmp").expect("temp dir in /tmp")
}

/// A file with `content` and permission bits `mode`.
pub fn secret_file(dir: &std::path::Path, name: &str, content: &str, mode: u32) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, content).unwrap();
    std::fs::set_permissions(&p, <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(mode)).unwrap();
    p
}

/// A started slapd with the dirbroker schema, ACLs and base entries; removed on drop.
#[derive(Debug)]
pub struct Bed {
    pub bed: Testbed,
    _tmp: tempfile::TempDir,
}

impl std::ops::Deref for Bed {
    type Target = Testbed;
    fn deref(&self) -> &Testbed {
        &self.bed
    }
}

impl std::ops::DerefMut for Bed {
    fn deref_mut(&mut self) -> &mut Testbed {
        &mut self.bed
    }
}

pub async fn start_with(configure: impl FnOnce(&mut TestbedOptions)) -> Bed {
    let tmp = scratch_dir();
    let mut opts = TestbedOptions::new(tmp.path().join("slapd"));
    configure(&mut opts);
    match Testbed::start(opts).await {
        Ok(bed) => Bed { bed, _tmp: tmp },
        Err(e) => panic!("testbed did not start: {e}"),
    }
}

pub async fn start() -> Bed {
    start_with(|_| {}).await
}

impl Bed {
    pub async fn dir_as(&self, who: Identity) -> Directory {
        let cfg = self.bed.directory_config(who).unwrap_or_else(|e| panic!("config for {who:?}: {e}"));
        Directory::connect(cfg).await.unwrap_or_else(|e| panic!("connect as {who:?}: {e}"))
    }

    /// Run an ldap-utils tool against this slapd's ldapi socket as root (EXTERNAL).
    pub fn ldap_tool_external(&self, tool: &str, args: &[&str], stdin: &str) -> Output {
        run_with_stdin(Command::new(tool).args(["-Q", "-Y", "EXTERNAL", "-H", &self.bed.ldapi_uri()]).args(args), stdin)
    }

    /// Run an ldap-utils tool over ldap:// bound as the directory admin (password from its file).
    pub fn ldap_tool_admin(&self, tool: &str, args: &[&str], stdin: &str) -> Output {
        let dn = self.bed.bind_dn(Identity::Admin).ok().flatten().map(|d| d.to_string()).unwrap_or_default();
        let pw = self.bed.password_file(Identity::Admin).unwrap_or_default();
        run_with_stdin(
            Command::new(tool).args(["-x", "-H", &self.bed.uri(), "-D", &dn, "-y"]).arg(pw).args(args),
            stdin,
        )
    }
}

pub fn run_with_stdin(cmd: &mut Command, stdin: &str) -> Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    if let Some(mut si) = child.stdin.take() {
        let _ = si.write_all(stdin.as_bytes());
    }
    child.wait_with_output().unwrap_or_else(|e| panic!("wait {cmd:?}: {e}"))
}

/// Path of the `dirbroker` binary built for these tests.
pub fn dirbroker_bin() -> PathBuf {
    let mut p = std::env::current_exe().unwrap_or_default();
    p.pop();
    if p.ends_with("deps") {
        p.pop();
    }
    p.join("dirbroker")
}

/// Path of the `dirbroker-agents` binary (built beside `dirbroker`).
pub fn agents_bin() -> PathBuf {
    dirbroker_bin().with_file_name("dirbroker-agents")
}

/// A command's standard output and error, for assertion messages.
pub fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// A free loopback port outside the ephemeral range (see [`crate::free_port`]).
pub fn free_port() -> u16 {
    crate::free_port().unwrap()
}

/// One of our daemons (`dirbroker serve`, `dirbroker-agents dc|ps|ams|ans|
/// example-service`), which print `listening on ADDR` first; its log goes to
/// a file, and it is killed on drop.
#[derive(Debug)]
pub struct Daemon {
    child: std::process::Child,
    pub addr: String,
    log: PathBuf,
}

impl Daemon {
    /// Starts `cmd` logging at `info` and waits for its address.
    pub fn start(cmd: &mut Command, log: PathBuf) -> Daemon {
        Daemon::start_at(cmd, log, "info")
    }

    /// Starts `cmd` with `DIRBROKER_LOG=level` and waits for its address.
    pub fn start_at(cmd: &mut Command, log: PathBuf, level: &str) -> Daemon {
        use std::io::BufRead;
        use std::process::Stdio;
        let mut child = cmd
            .env("DIRBROKER_LOG", level)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let Some(addr) = line.trim().strip_prefix("listening on ") else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} did not start: {line}{}", std::fs::read_to_string(&log).unwrap_or_default());
        };
        Daemon { addr: addr.to_string(), child, log }
    }

    /// Everything the daemon logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The process id (to signal it).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `https://ADDR/PATH` for this daemon.
    pub fn https_url(&self, path: &str) -> String {
        format!("https://{}{path}", self.addr)
    }

    /// Its exit status, if it has exited.
    pub fn try_wait(&mut self) -> std::io::Result<Option<std::process::ExitStatus>> {
        self.child.try_wait()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
