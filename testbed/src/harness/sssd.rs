//! SSSD from the Debian packages as a judge: a real `sssd` reading the test
//! slapd, isolated in its own mount namespace so the machine's NSS and PAM
//! are untouched, and an sshd in the same namespace (NSS and PAM account
//! from SSSD).
//!
//! ```text
//!  unshare --mount ─► holder (sleep): private /etc/nsswitch.conf (files sss),
//!                     /etc/sssd, /var/lib/sss, /var/log/sssd, /etc/pam.d/sshd
//!                     bind-mounted from a scratch directory
//!  nsenter -m -t HOLDER ─► sssd -i, getent, id, sss_ssh_authorizedkeys, sshd
//! ```
//!
//! Everything that must see SSSD runs through [`SssdNode::command`]; the host
//! keeps its own /etc/nsswitch.conf, and a directory-only user stays unknown
//! to it.

use std::io::BufRead;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::openssh::Sshd;
use super::{scratch_dir, text};

const SSSD: &str = "/usr/sbin/sssd";

/// The nsswitch.conf inside the namespace: local files first, then SSSD.
const NSSWITCH: &str = "passwd: files sss\ngroup: files sss\nshadow: files\nhosts: files dns\n";

/// sshd's PAM stack inside the namespace: no passwords; the account phase as
/// Debian's common-account has it once libpam-sss is installed (pam_unix,
/// then pam_sss, whose verdict is SSSD's access provider); no session modules
/// that need a login manager.
const PAM_SSHD: &str = "auth     required pam_deny.so\n\
account  [success=1 new_authtok_reqd=done default=ignore] pam_unix.so\n\
account  requisite pam_deny.so\n\
account  required pam_permit.so\n\
account  [default=bad success=ok user_unknown=ignore] pam_sss.so\n\
session  required pam_permit.so\n\
password required pam_deny.so\n";

/// Why SSSD cannot run here (the caller decides whether that is a skip).
pub fn unavailable() -> Option<String> {
    for tool in [SSSD, "/usr/bin/sss_ssh_authorizedkeys", "/usr/bin/unshare", "/usr/bin/nsenter", "/usr/sbin/sshd"] {
        if !Path::new(tool).exists() {
            return Some(format!("{tool} is missing (scripts/install-deps.sh installs sssd-ldap, sssd-tools)"));
        }
    }
    let libs =
        ["/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib/aarch64-linux-gnu", "/usr/lib/aarch64-linux-gnu"];
    if !libs.iter().any(|d| Path::new(d).join("libnss_sss.so.2").exists()) {
        return Some("libnss_sss.so.2 is missing (package libnss-sss)".into());
    }
    let probe = Command::new("unshare").args(["--mount", "--propagation", "private", "true"]).output();
    match probe {
        Ok(o) if o.status.success() => None,
        Ok(o) => Some(format!("unshare --mount is not allowed here: {}", text(&o).trim())),
        Err(e) => Some(format!("unshare: {e}")),
    }
}

/// A running sssd in its own mount namespace; everything is stopped and the
/// namespace disappears on drop.
#[derive(Debug)]
pub struct SssdNode {
    root: tempfile::TempDir,
    holder: Child,
    sssd: Option<Child>,
}

fn private_dir(p: &Path, mode: u32) {
    std::fs::create_dir_all(p).unwrap();
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

impl SssdNode {
    /// Start sssd with `conf` (an sssd.conf, copied in as root:root 0600) and
    /// wait until its NSS responder answers for `probe_user`.
    pub fn start(conf: &Path, probe_user: &str) -> SssdNode {
        let root = scratch_dir();
        let r = root.path();
        private_dir(&r.join("sssd/conf.d"), 0o711);
        std::fs::set_permissions(r.join("sssd"), std::fs::Permissions::from_mode(0o711)).unwrap();
        let conf_in = r.join("sssd/sssd.conf");
        std::fs::copy(conf, &conf_in).unwrap();
        std::fs::set_permissions(&conf_in, std::fs::Permissions::from_mode(0o600)).unwrap();
        for (d, mode) in [
            ("lib", 0o755),
            ("lib/db", 0o700),
            ("lib/pipes", 0o755),
            ("lib/pipes/private", 0o750),
            ("lib/mc", 0o775),
            ("lib/pubconf", 0o755),
            ("lib/gpo_cache", 0o755),
            ("lib/secrets", 0o700),
            ("lib/deskprofile", 0o751),
            ("log", 0o750),
        ] {
            private_dir(&r.join(d), mode);
        }
        std::fs::write(r.join("nsswitch.conf"), NSSWITCH).unwrap();
        std::fs::write(r.join("pam-sshd"), PAM_SSHD).unwrap();
        let binds = [
            ("nsswitch.conf", "/etc/nsswitch.conf"),
            ("sssd", "/etc/sssd"),
            ("lib", "/var/lib/sss"),
            ("log", "/var/log/sssd"),
            ("pam-sshd", "/etc/pam.d/sshd"),
        ];
        // Paths come from scratch_dir (no quoting needed) and constants.
        let mut script = String::from("set -e\n");
        for (from, to) in binds {
            script.push_str(&format!("mount --bind {} {to}\n", r.join(from).display()));
        }
        // A private /run: sssd's pid file (/run/sssd.pid, fixed at build
        // time) must not meet the host's, and no host nscd may answer for
        // NSS. What the tests need from the host's /run (binaries installed
        // where sshd accepts them) is bound back; sshd gets its privsep dir.
        private_dir(&r.join("host-run"), 0o700);
        let host_run = r.join("host-run");
        script.push_str(&format!(
            "mount --bind /run {hr}\nmount -t tmpfs -o mode=0755 dirbroker-sssd-run /run\nmkdir -m 0755 /run/sshd\n\
             if [ -d {hr}/dirbroker-tests ]; then mkdir -m 0755 /run/dirbroker-tests; \
             mount --bind {hr}/dirbroker-tests /run/dirbroker-tests; fi\n",
            hr = host_run.display()
        ));
        script.push_str("echo ready\nexec sleep infinity\n");
        let mut holder = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "--", "sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(holder.stdout.take().unwrap()).read_line(&mut line).unwrap();
        if line.trim() != "ready" {
            let _ = holder.kill();
            let out = holder.wait_with_output().unwrap();
            panic!("the namespace for SSSD was not set up: {}", text(&out));
        }
        let mut node = SssdNode { root, holder, sssd: None };
        let log = std::fs::File::create(node.root.path().join("sssd.stderr")).unwrap();
        let sssd = node
            .command(SSSD)
            .args(["-i", "--logger=files", "-d", "0x03f0"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        node.sssd = Some(sssd);
        node.wait_ready(probe_user);
        node
    }

    fn wait_ready(&mut self, probe_user: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(Ok(Some(status))) = self.sssd.as_mut().map(Child::try_wait) {
                panic!("sssd exited with {status}: {}", self.log());
            }
            let o = self.run("getent", &["passwd", probe_user]);
            if o.status.success() {
                return;
            }
            if Instant::now() > deadline {
                panic!("SSSD did not answer for {probe_user}: {}\n{}", text(&o), self.log());
            }
            dirbroker::clock::sleep(Duration::from_millis(200));
        }
    }

    /// `program` run inside the namespace (sees SSSD's NSS and PAM).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg("--mount").arg(format!("--target={}", self.holder.id())).arg("--").arg(program);
        cmd
    }

    /// Run `program args` inside the namespace to completion.
    pub fn run(&self, program: &str, args: &[&str]) -> Output {
        self.command(program).args(args).stdin(Stdio::null()).output().unwrap()
    }

    /// sssd's own output and its log files, for assertion messages.
    pub fn log(&self) -> String {
        let mut all = std::fs::read_to_string(self.root.path().join("sssd.stderr")).unwrap_or_default();
        if let Ok(dir) = std::fs::read_dir(self.root.path().join("log")) {
            for e in dir.flatten() {
                all.push_str(&format!("\n== {} ==\n", e.path().display()));
                let text = std::fs::read_to_string(e.path()).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(40).collect();
                all.extend(tail.into_iter().rev().map(|l| format!("{l}\n")));
            }
        }
        all
    }

    /// The whole of one of SSSD's log files, e.g. `sssd_DOMAIN.log` (the
    /// back end, where access decisions are logged).
    pub fn log_file(&self, name: &str) -> String {
        std::fs::read_to_string(self.root.path().join("log").join(name)).unwrap_or_default()
    }

    /// An sshd inside the namespace, on a free loopback port: its own host key
    /// and base settings, then `wiring` (AuthorizedKeysCommand, UsePAM, …),
    /// PAM stack as [`PAM_SSHD`].
    pub fn sshd(&self, wiring: &str) -> Sshd {
        Sshd::start_with(wiring, |program| self.command(program))
    }
}

impl Drop for SssdNode {
    fn drop(&mut self) {
        if let Some(mut sssd) = self.sssd.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(i32::try_from(sssd.id()).unwrap_or(i32::MAX)),
                nix::sys::signal::Signal::SIGTERM,
            );
            let deadline = Instant::now() + Duration::from_secs(10);
            while matches!(sssd.try_wait(), Ok(None)) && Instant::now() < deadline {
                dirbroker::clock::sleep(Duration::from_millis(50));
            }
            let _ = sssd.kill();
            let _ = sssd.wait();
        }
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}
