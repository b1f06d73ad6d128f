//! Running the binary under test; the rest of the harness (sshd, local
//! accounts, daemons, free ports) is `dirbroker_testbed::harness`.

use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub use dirbroker_testbed::harness::openssh::*;
pub use dirbroker_testbed::harness::{Daemon, scratch_dir, secret_file, text};

pub const BIN: &str = env!("CARGO_BIN_EXE_dirbroker");
/// The node binary sshd_config points to (docs/ssh.md).
pub const NODE_BIN: &str = env!("CARGO_BIN_EXE_dirbroker-ssh");

pub fn run(args: &[&OsStr], config: Option<&Path>, stdin: &str) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args).env_remove("DIRBROKER_CONFIG").env_remove("DIRBROKER_BIND_PASSWORD_FILE");
    if let Some(c) = config {
        cmd.env("DIRBROKER_CONFIG", c);
    }
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    child.wait_with_output().unwrap()
}

pub fn dirbroker(args: &[&str], config: Option<&Path>, stdin: &str) -> Output {
    let args: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
    run(&args, config, stdin)
}

pub fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

/// `openssl verify ARGS`: whether it accepted, and what it said.
pub fn openssl_verify(args: &[&str]) -> (bool, String) {
    let o = Command::new("openssl").arg("verify").args(args).output().unwrap();
    (o.status.success(), text(&o))
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Stops a CLI-started slapd even when an assertion fails.
pub struct Down(pub PathBuf);
impl Drop for Down {
    fn drop(&mut self) {
        let _ = dirbroker(&["testbed", "down", "--dir", self.0.to_str().unwrap()], None, "");
    }
}

/// `dirbroker testbed up --dir DIR`, asserted; the guard stops it again.
pub fn testbed_up(dir: &Path) -> Down {
    let up = dirbroker(&["testbed", "up", "--dir", dir.to_str().unwrap()], None, "");
    let down = Down(dir.to_path_buf());
    assert_eq!(code(&up), 0, "{}", text(&up));
    down
}

/// Both binaries copied where sshd accepts them (see [`Installed`]).
pub fn installed() -> Installed {
    Installed::with_binaries(Path::new(BIN), Path::new(NODE_BIN))
}

/// A testbed started by the CLI in a scratch directory: the directory, the
/// configuration file `testbed up` wrote, and the guard that stops it.
pub fn cli_bed() -> (tempfile::TempDir, PathBuf, Down) {
    let tmp = scratch_dir();
    let bed = tmp.path().join("bed");
    let down = testbed_up(&bed);
    (tmp, bed.join("dirbroker.toml"), down)
}
