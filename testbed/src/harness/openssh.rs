//! The real OpenSSH pieces: a private sshd on loopback, local accounts for
//! it to log in, binaries installed where sshd accepts an
//! AuthorizedKeysCommand, user key pairs, and `ssh` itself.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::{free_port, scratch_dir, text};

fn random_suffix() -> String {
    use rand::Rng;
    let mut rng = dirbroker::clock::rng();
    (0..8).map(|_| char::from(b'a' + rng.random_range(0..26u8))).collect()
}

pub fn must_be_root() {
    let uid = std::fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m)).unwrap_or(1);
    assert_eq!(uid, 0, "the OpenSSH tests start sshd and create local accounts: run them as root (CI does)");
}

/// A local account for sshd to log in (NSS must know it), removed on drop.
#[derive(Debug)]
pub struct LocalUser {
    pub name: String,
}

impl LocalUser {
    pub fn create() -> LocalUser {
        let name = format!("dbt{}", random_suffix());
        let ok = Command::new("useradd")
            .args(["--no-create-home", "--home-dir", "/", "--shell", "/bin/sh", &name])
            .status()
            .unwrap();
        assert!(ok.success(), "useradd {name}");
        // With UsePAM no, a password field of "!" locks the account even for keys.
        assert!(Command::new("usermod").args(["-p", "*", &name]).status().unwrap().success());
        LocalUser { name }
    }
}

impl Drop for LocalUser {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg(&self.name).status();
    }
}

/// The dirbroker binary copied to a root-owned path that sshd accepts for
/// AuthorizedKeysCommand (every directory up to / root-owned, not group- or
/// world-writable), with a node config readable by `nobody`.
#[derive(Debug)]
pub struct Installed {
    pub dir: PathBuf,
    pub bin: PathBuf,
    pub node_bin: PathBuf,
}

impl Installed {
    /// Copies `bin` (as `dirbroker`) and `node_bin` (as `dirbroker-ssh`).
    pub fn with_binaries(bin: &Path, node_bin: &Path) -> Installed {
        let base = Path::new("/run/dirbroker-tests");
        std::fs::create_dir_all(base).unwrap();
        std::fs::set_permissions(base, std::fs::Permissions::from_mode(0o755)).unwrap();
        let dir = base.join(random_suffix());
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let bin_path = dir.join("dirbroker");
        let node_path = dir.join("dirbroker-ssh");
        for (from, to) in [(bin, &bin_path), (node_bin, &node_path)] {
            std::fs::copy(from, to).unwrap();
            std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        Installed { dir, bin: bin_path, node_bin: node_path }
    }

    /// Write a file readable by `owner` only (mode 0600).
    pub fn private_file_for(&self, name: &str, content: &str, owner: &str) -> PathBuf {
        let p = self.dir.join(name);
        std::fs::write(&p, content).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        let (uid, gid) = ids(owner);
        std::os::unix::fs::chown(&p, Some(uid), Some(gid)).unwrap();
        p
    }

    pub fn public_file(&self, name: &str, content: &str) -> PathBuf {
        let p = self.dir.join(name);
        std::fs::write(&p, content).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        p
    }

    pub fn dir_for(&self, name: &str, owner: &str) -> PathBuf {
        let p = self.dir.join(name);
        std::fs::create_dir(&p).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o700)).unwrap();
        let (uid, gid) = ids(owner);
        std::os::unix::fs::chown(&p, Some(uid), Some(gid)).unwrap();
        p
    }
}

impl Drop for Installed {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn ids(user: &str) -> (u32, u32) {
    let out = Command::new("id").args(["-u", user]).output().unwrap();
    let uid: u32 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    let out = Command::new("id").args(["-g", user]).output().unwrap();
    let gid: u32 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    (uid, gid)
}

/// A private sshd on 127.0.0.1 that takes user keys from `command`.
#[derive(Debug)]
pub struct Sshd {
    pub dir: tempfile::TempDir,
    pub port: u16,
    child: Child,
}

impl Sshd {
    /// sshd taking user keys from `command`, run as `command_user`.
    pub fn start(command: &str, command_user: &str) -> Sshd {
        let wiring = format!(
            "UsePAM no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n\
             AuthorizedKeysCommand {command}\nAuthorizedKeysCommandUser {command_user}\nMaxStartups 50\n"
        );
        Self::start_with(&wiring, |program| Command::new(program))
    }

    /// sshd with the settings every test shares (loopback, a fresh host
    /// key, keys only, no root, no forwarding) and `wiring` after them;
    /// `launcher` makes the command that runs a program (e.g. inside a
    /// node's mount namespace). A port taken meanwhile is tried again.
    pub fn start_with(wiring: &str, launcher: impl Fn(&str) -> Command) -> Sshd {
        let mut last = String::new();
        for _ in 0..5 {
            match Self::try_start(wiring, &launcher) {
                Ok(sshd) => return sshd,
                Err(log) if log.contains("Address already in use") => last = log,
                Err(log) => panic!("sshd did not start: {log}"),
            }
        }
        panic!("sshd did not start: {last}")
    }

    fn try_start(wiring: &str, launcher: &impl Fn(&str) -> Command) -> Result<Sshd, String> {
        let dir = scratch_dir();
        std::fs::create_dir_all("/run/sshd").unwrap();
        let key = dir.path().join("ssh_host_ed25519_key");
        let ok = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "testbed-host", "-f"])
            .arg(&key)
            .status()
            .unwrap();
        assert!(ok.success());
        let port = free_port();
        let config = dir.path().join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {key}\nPidFile {pid}\nAuthenticationMethods publickey\n\
                 PermitRootLogin no\nAuthorizedKeysFile none\nUseDNS no\nLogLevel VERBOSE\nPrintMotd no\n\
                 X11Forwarding no\nAllowTcpForwarding no\n{wiring}",
                key = key.display(),
                pid = dir.path().join("sshd.pid").display(),
            ),
        )
        .unwrap();
        let t = launcher("/usr/sbin/sshd").arg("-t").arg("-f").arg(&config).output().unwrap();
        assert!(t.status.success(), "sshd -t: {}", text(&t));
        let log = std::fs::File::create(dir.path().join("sshd.log")).unwrap();
        let child = launcher("/usr/sbin/sshd")
            .arg("-D")
            .arg("-e")
            .arg("-f")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut sshd = Sshd { dir, port, child };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(sshd);
            }
            if let Ok(Some(_)) = sshd.child.try_wait() {
                break;
            }
            dirbroker::clock::sleep(Duration::from_millis(25));
        }
        Err(sshd.log())
    }

    /// `ssh -i KEY USER@127.0.0.1 COMMAND` (from the host: only TCP is needed).
    pub fn ssh(&self, user: &str, key: &Path, command: &str) -> Output {
        Command::new("ssh")
            .args(["-F", "/dev/null", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "ConnectTimeout=20"])
            .args(["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR"])
            .arg("-i")
            .arg(key)
            .args(["-p", &self.port.to_string(), &format!("{user}@127.0.0.1"), command])
            .env_remove("SSH_AUTH_SOCK")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    pub fn host_key_dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A user key pair made by ssh-keygen (no passphrase unless given).
pub fn keypair(dir: &Path, name: &str, passphrase: &str) -> (PathBuf, String) {
    let key = dir.join(name);
    let ok = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", passphrase, "-C", name, "-f"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(ok.success());
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    (key, public.trim().to_string())
}

/// `ssh user@127.0.0.1 -p port echo login-ok` with the given extra options.
pub fn ssh(port: u16, user: &str, extra: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new("ssh");
    cmd.args(["-F", "/dev/null", "-o", "BatchMode=yes", "-o", "ConnectTimeout=20", "-o", "LogLevel=ERROR"])
        .args(extra)
        .args(["-p", &port.to_string(), &format!("{user}@127.0.0.1"), "echo", "login-ok"])
        .stdin(Stdio::null());
    cmd.env_remove("SSH_AUTH_SOCK");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

pub fn logged_in(o: &Output) -> bool {
    o.status.success() && String::from_utf8_lossy(&o.stdout).contains("login-ok")
}
