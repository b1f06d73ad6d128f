//! `[directory] start_wait_s`: a command started before its directory waits
//! for it with back-off (the compose testbed starts the broker and slapd
//! together), while a refusal that waiting cannot cure is reported at once.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};

use dirbroker_testbed::{Testbed, TestbedOptions, free_port};

use crate::support::*;

/// The testbed's own dirbroker.toml with `start_wait_s` added to [directory].
fn config_waiting(bed: &Testbed, dir: &std::path::Path, wait_s: u32) -> std::path::PathBuf {
    let text = std::fs::read_to_string(bed.dir().join("dirbroker.toml")).unwrap();
    assert!(text.contains("[directory]\n"), "{text}");
    let path = dir.join("waiting.toml");
    std::fs::write(&path, text.replacen("[directory]\n", &format!("[directory]\nstart_wait_s = {wait_s}\n"), 1))
        .unwrap();
    path
}

#[tokio::test]
async fn check_waits_for_a_directory_that_starts_later() {
    let tmp = scratch_dir();
    let mut bed = Testbed::start(TestbedOptions::new(tmp.path().join("slapd"))).await.unwrap();
    let config = config_waiting(&bed, tmp.path(), 120);
    bed.stop();

    let mut child = Command::new(BIN)
        .args(["--config", config.to_str().unwrap(), "check"])
        .env_remove("DIRBROKER_BIND_PASSWORD_FILE")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    // The first wait is logged before slapd is back: the command did not give up.
    while !seen.contains("waiting") {
        let mut line = String::new();
        assert_ne!(stderr.read_line(&mut line).unwrap(), 0, "check ended without waiting: {seen}");
        seen.push_str(&line);
    }
    bed.restart().await.unwrap();
    stderr.read_to_string(&mut seen).unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{seen}");
    assert!(stdout.contains("ok   bind: bound as dn:cn=broker"), "{stdout}");
    assert!(seen.contains("attempt 1 to reach the directory failed (directory unavailable"), "{seen}");
    assert!(!seen.contains('\u{1b}'), "colour codes in a log that is not a terminal: {seen:?}");
}

#[test]
fn an_unreachable_directory_is_given_up_when_the_wait_is_spent() {
    let tmp = scratch_dir();
    let config = tmp.path().join("nowhere.toml");
    let port = free_port().unwrap();
    std::fs::write(
        &config,
        format!(
            "[directory]\nuris = [\"ldap://127.0.0.1:{port}\"]\nbase_dn = \"dc=example,dc=org\"\nstart_wait_s = 1\n"
        ),
    )
    .unwrap();
    let o = dirbroker(&["check"], Some(&config), "");
    let all = text(&o);
    // 1 s of waiting is 0.5 s twice: three attempts, then exit 3 (retry later).
    assert_eq!(code(&o), 3, "{all}");
    assert!(all.contains("attempt 1 to") && all.contains("attempt 2 to") && !all.contains("attempt 3 to"), "{all}");
    assert!(all.contains("gave up after 3 attempts"), "{all}");
}

#[tokio::test]
async fn a_wrong_password_is_reported_at_once_without_waiting() {
    let tmp = scratch_dir();
    let bed = Testbed::start(TestbedOptions::new(tmp.path().join("slapd"))).await.unwrap();
    let config = config_waiting(&bed, tmp.path(), 600);
    let wrong = secret_file(tmp.path(), "wrong.pw", "not-the-broker-password", 0o600);
    let o = Command::new(BIN)
        .args(["--config", config.to_str().unwrap(), "check"])
        .env("DIRBROKER_BIND_PASSWORD_FILE", &wrong)
        .output()
        .unwrap();
    let all = text(&o);
    assert_eq!(code(&o), 1, "{all}");
    assert!(all.contains("invalid credentials"), "{all}");
    assert!(!all.contains("waiting"), "{all}");
}
