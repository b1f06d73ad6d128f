//! The `dirbroker` binary as a user runs it: a testbed started by the CLI
//! itself, then users managed through it. Asserts on exit codes and output.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use crate::support::*;

#[test]
fn help_has_examples_everywhere() {
    let top = dirbroker(&["--help"], None, "");
    assert_eq!(code(&top), 0);
    assert!(text(&top).contains("Examples:"));
    for sub in [
        vec!["testbed", "up"],
        vec!["testbed", "down"],
        vec!["testbed", "status"],
        vec!["check"],
        vec!["user", "add"],
        vec!["user", "show"],
        vec!["user", "list"],
        vec!["user", "delete"],
        vec!["user", "set-password"],
        vec!["user", "check-password"],
    ] {
        let mut args = sub.clone();
        args.push("--help");
        let o = dirbroker(&args, None, "");
        assert_eq!(code(&o), 0, "{sub:?}");
        assert!(text(&o).contains("Example"), "{sub:?} --help has no example:\n{}", text(&o));
        assert!(!text(&o).contains("--password "), "a password flag on argv in {sub:?}");
    }
    let o = dirbroker(&["user", "frobnicate"], None, "");
    assert_eq!(code(&o), 2);
}

#[test]
fn config_problems_exit_4_and_say_where() {
    let tmp = tempfile::tempdir().unwrap();
    let o = dirbroker(&["--config", "/nonexistent/dirbroker.toml", "check"], None, "");
    assert_eq!(code(&o), 4);
    assert!(text(&o).contains("/nonexistent/dirbroker.toml"), "{}", text(&o));
    let bad = tmp.path().join("bad.toml");
    std::fs::write(&bad, "[directory]\nuris = [\"ldap://127.0.0.1:1\"]\nbase_dn = 3\n").unwrap();
    let o = dirbroker(&["check"], Some(&bad), "");
    assert_eq!(code(&o), 4);
    assert!(text(&o).contains("line 3"), "{}", text(&o));
}

#[test]
fn quick_start_flow_through_the_cli() {
    let tmp = tempfile::Builder::new().prefix("dbc").tempdir_in("/tmp").unwrap();
    let bed_dir = tmp.path().join("bed");
    let up = dirbroker(&["testbed", "up", "--dir", bed_dir.to_str().unwrap(), "--output", "json"], None, "");
    let _down = Down(bed_dir.clone());
    assert_eq!(code(&up), 0, "{}", text(&up));
    let info: serde_json::Value = serde_json::from_slice(&up.stdout).unwrap();
    let config = PathBuf::from(info["config"].as_str().unwrap());
    assert!(config.exists());
    assert_eq!(std::fs::metadata(bed_dir.join("broker.pw")).unwrap().permissions().mode() & 0o777, 0o600);

    // A second `up` on the same directory is refused, the running one untouched.
    let again = dirbroker(&["testbed", "up", "--dir", bed_dir.to_str().unwrap()], None, "");
    assert_eq!(code(&again), 1);
    assert!(text(&again).contains("already runs"), "{}", text(&again));

    let check = dirbroker(&["check", "--output", "json"], Some(&config), "");
    assert_eq!(code(&check), 0, "{}", text(&check));
    let report: serde_json::Value = serde_json::from_slice(&check.stdout).unwrap();
    assert_eq!(report["ok"], true);

    let pw = secret_file(tmp.path(), "alice.pw", "wonderland-42\n", 0o600);
    let add = dirbroker(
        &["user", "add", "alice", "--name", "Alice Liddell", "--password-file", pw.to_str().unwrap()],
        Some(&config),
        "",
    );
    assert_eq!(code(&add), 0, "{}", text(&add));
    let show = dirbroker(&["user", "show", "alice", "--output", "json"], Some(&config), "");
    let shown: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
    assert_eq!(shown["uid"], "alice");
    assert_eq!(shown["name"], "Alice Liddell");
    assert_eq!(shown["level"], 2);

    let good = dirbroker(&["user", "check-password", "alice"], Some(&config), "wonderland-42\n");
    assert_eq!(code(&good), 0, "{}", text(&good));
    let bad = dirbroker(&["user", "check-password", "alice"], Some(&config), "wonderland-43\n");
    assert_eq!(code(&bad), 1);
    let empty = dirbroker(&["user", "check-password", "alice"], Some(&config), "\n");
    assert_eq!(code(&empty), 2, "{}", text(&empty));

    // The account rule: the right password of a disabled account is refused,
    // and says why; enabled again, it is accepted.
    let off = dirbroker(&["user", "disable", "alice"], Some(&config), "");
    assert_eq!((code(&off), String::from_utf8_lossy(&off.stdout).trim()), (0, "alice disabled"), "{}", text(&off));
    let again = dirbroker(&["user", "disable", "alice"], Some(&config), "");
    assert!(text(&again).contains("alice was disabled already"), "{}", text(&again));
    let shown = dirbroker(&["user", "show", "alice", "--output", "json"], Some(&config), "");
    let shown: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!((shown["disabled"].as_bool(), shown["usable"].as_str()), (Some(true), Some("disabled")));
    let refused = dirbroker(&["user", "check-password", "alice"], Some(&config), "wonderland-42\n");
    assert_eq!(code(&refused), 1);
    assert!(text(&refused).contains("alice: account disabled"), "{}", text(&refused));
    let on = dirbroker(&["user", "enable", "alice"], Some(&config), "");
    assert_eq!(code(&on), 0, "{}", text(&on));
    let good = dirbroker(&["user", "check-password", "alice"], Some(&config), "wonderland-42\n");
    assert_eq!(code(&good), 0, "{}", text(&good));
    let nobody = dirbroker(&["user", "disable", "nobody"], Some(&config), "");
    assert_eq!(code(&nobody), 1, "{}", text(&nobody));

    let generated = tmp.path().join("bob.pw");
    let add = dirbroker(
        &["user", "add", "bob", "--name", "Bob", "--level", "4", "--generate-password", generated.to_str().unwrap()],
        Some(&config),
        "",
    );
    assert_eq!(code(&add), 0, "{}", text(&add));
    assert_eq!(std::fs::metadata(&generated).unwrap().permissions().mode() & 0o777, 0o600);
    let bob_pw = std::fs::read_to_string(&generated).unwrap();
    assert!(!text(&add).contains(&bob_pw), "generated password printed");
    let ok = dirbroker(
        &["user", "check-password", "bob", "--password-file", generated.to_str().unwrap()],
        Some(&config),
        "",
    );
    assert_eq!(code(&ok), 0, "{}", text(&ok));

    // Bad input: clear message, exit 2, nothing written.
    let dup = dirbroker(&["user", "add", "alice", "--name", "Again"], Some(&config), "");
    assert_eq!(code(&dup), 1);
    assert!(text(&dup).contains("already exists"), "{}", text(&dup));
    let spaced = dirbroker(&["user", "add", " eve", "--name", "Eve"], Some(&config), "");
    assert_eq!(code(&spaced), 2, "{}", text(&spaced));
    assert!(text(&spaced).contains("uid"), "{}", text(&spaced));
    let level = dirbroker(&["user", "add", "eve", "--name", "Eve", "--level", "7"], Some(&config), "");
    assert_eq!(code(&level), 2);
    let open = secret_file(tmp.path(), "open.pw", "visible\n", 0o644);
    let leaky = dirbroker(
        &["user", "add", "eve", "--name", "Eve", "--password-file", open.to_str().unwrap()],
        Some(&config),
        "",
    );
    assert_eq!(code(&leaky), 2);
    assert!(text(&leaky).contains("chmod 600"), "{}", text(&leaky));
    let raw: &[&OsStr] = &[OsStr::new("user"), OsStr::new("show"), OsStr::from_bytes(b"al\xffice")];
    let non_utf8 = run(raw, Some(&config), "");
    assert_eq!(code(&non_utf8), 2, "{}", text(&non_utf8));
    let injected = dirbroker(&["user", "show", "*)(uid=*"], Some(&config), "");
    assert_eq!(code(&injected), 1);
    assert!(text(&injected).contains("no user"), "{}", text(&injected));

    let list = dirbroker(&["user", "list", "--output", "json"], Some(&config), "");
    let users: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    let uids: Vec<&str> = users.as_array().unwrap().iter().map(|u| u["uid"].as_str().unwrap()).collect();
    assert_eq!(uids, ["alice", "bob"], "eve must not exist after the failed adds");

    let del = dirbroker(&["user", "delete", "bob"], Some(&config), "");
    assert_eq!(code(&del), 0);
    let gone = dirbroker(&["user", "show", "bob"], Some(&config), "");
    assert_eq!(code(&gone), 1);

    // Once the slapd is down, the same command says the directory is unavailable.
    let down = dirbroker(&["testbed", "down", "--dir", bed_dir.to_str().unwrap()], None, "");
    assert_eq!(code(&down), 0);
    assert!(!bed_dir.exists());
    std::fs::create_dir_all(&bed_dir).unwrap();
    std::fs::write(bed_dir.join("broker.pw"), "x").unwrap();
    std::fs::set_permissions(bed_dir.join("broker.pw"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let cfg_text = format!(
        "[directory]\nuris = [{:?}]\nbase_dn = \"dc=example,dc=org\"\nbind_dn = \"cn=broker,ou=system,dc=example,dc=org\"\nbind_password_file = {:?}\nconnect_timeout_ms = 500\n",
        info["uri"].as_str().unwrap(),
        bed_dir.join("broker.pw").to_str().unwrap()
    );
    let cfg2 = tmp.path().join("stale.toml");
    std::fs::write(&cfg2, cfg_text).unwrap();
    let unavailable = dirbroker(&["check"], Some(&cfg2), "");
    assert_eq!(code(&unavailable), 3, "{}", text(&unavailable));
    assert!(text(&unavailable).contains("unavailable"), "{}", text(&unavailable));
}

#[test]
fn tls_testbed_and_the_read_only_node_identity() {
    let tmp = tempfile::Builder::new().prefix("dbt").tempdir_in("/tmp").unwrap();
    let bed_dir = tmp.path().join("bed");
    let up = dirbroker(&["testbed", "up", "--tls", "--dir", bed_dir.to_str().unwrap(), "--output", "json"], None, "");
    let _down = Down(bed_dir.clone());
    assert_eq!(code(&up), 0, "{}", text(&up));
    let info: serde_json::Value = serde_json::from_slice(&up.stdout).unwrap();
    assert!(info["uri"].as_str().unwrap().starts_with("ldaps://127.0.0.1:"), "{info}");
    let broker = PathBuf::from(info["config"].as_str().unwrap());
    let node = bed_dir.join("node-reader.toml");

    let check = dirbroker(&["check"], Some(&broker), "");
    assert_eq!(code(&check), 0, "{}", text(&check));
    assert!(text(&check).contains("cn=broker"), "{}", text(&check));
    let pw = tmp.path().join("alice.pw");
    let add = dirbroker(
        &["user", "add", "alice", "--name", "Alice", "--generate-password", pw.to_str().unwrap()],
        Some(&broker),
        "",
    );
    assert_eq!(code(&add), 0, "{}", text(&add));

    // The node identity reads public data, and may not write.
    let show = dirbroker(&["user", "show", "alice", "--output", "json"], Some(&node), "");
    assert_eq!(code(&show), 0, "{}", text(&show));
    let denied = dirbroker(&["user", "add", "mallory", "--name", "Mallory"], Some(&node), "");
    assert_eq!(code(&denied), 5, "{}", text(&denied));
    let denied = dirbroker(&["user", "delete", "alice"], Some(&node), "");
    assert_eq!(code(&denied), 5, "{}", text(&denied));

    // The same server through a CA it does not present fails, and says it is about certificates.
    let other_ca = tmp.path().join("other.pem");
    std::fs::write(&other_ca, include_str!("../../../tests/e2e/fixtures/other-ca.pem")).unwrap();
    let cfg = std::fs::read_to_string(&broker).unwrap();
    let ca_line = cfg.lines().find(|l| l.starts_with("ca_file")).unwrap().to_string();
    let wrong = tmp.path().join("wrong.toml");
    std::fs::write(&wrong, cfg.replace(&ca_line, &format!("ca_file = {:?}", other_ca.to_str().unwrap()))).unwrap();
    let o = dirbroker(&["check"], Some(&wrong), "");
    assert_ne!(code(&o), 0);
    assert!(text(&o).to_lowercase().contains("cert"), "{}", text(&o));
}

/// Whether `uid` is on provider `k` (at `uri`) within 5 s, read with
/// ldapsearch as that provider's own rootdn.
fn reaches(dir: &std::path::Path, k: usize, uri: &str, uid: &str) -> bool {
    let pw = dir.join(format!("p{}", k + 1)).join("admin.pw");
    for _ in 0..100 {
        let o = std::process::Command::new("ldapsearch")
            .args(["-x", "-LLL", "-H", uri, "-D", "cn=admin,dc=example,dc=org", "-y"])
            .arg(&pw)
            .args(["-b", "ou=people,dc=example,dc=org", &format!("(uid={uid})"), "uid"])
            .output()
            .unwrap();
        if String::from_utf8_lossy(&o.stdout).contains(&format!("uid: {uid}")) {
            return true;
        }
        dirbroker::clock::sleep(std::time::Duration::from_millis(50));
    }
    false
}

/// `testbed join`: a third provider added to a running 2-provider testbed
/// starts empty, is filled by replication, takes later writes, is read-only
/// (`cluster status`: still exactly one writer), and the config lists it; `cluster compare`
/// finds the three equal. A directory without a cluster is refused.
#[test]
fn testbed_join_adds_a_filled_read_only_provider() {
    let tmp = tempfile::Builder::new().prefix("dbr").tempdir_in("/tmp").unwrap();
    let dir = tmp.path().join("cluster");
    let d = dir.to_str().unwrap();
    let up = dirbroker(&["testbed", "up", "--providers", "2", "--dir", d, "--output", "json"], None, "");
    let _down = Down(dir.clone());
    assert_eq!(code(&up), 0, "{}", text(&up));
    let config = dir.join("dirbroker.toml");
    let add = dirbroker(&["user", "add", "carol", "--name", "Carol"], Some(&config), "");
    assert_eq!(code(&add), 0, "{}", text(&add));

    let join = dirbroker(&["testbed", "join", "--dir", d, "--output", "json"], None, "");
    assert_eq!(code(&join), 0, "{}", text(&join));
    let p3: serde_json::Value = serde_json::from_slice(&join.stdout).unwrap();
    assert_eq!(p3["provider"], 3);
    let uri = p3["uri"].as_str().unwrap();
    assert!(reaches(&dir, 2, uri, "carol"), "the joined provider was not filled");
    assert!(std::fs::read_to_string(&config).unwrap().contains(uri), "the config does not list {uri}");
    let status = dirbroker(&["testbed", "status", "--dir", d, "--output", "json"], None, "");
    let st: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(st["providers"].as_array().unwrap().iter().filter(|p| p["running"] == true).count(), 3);

    let add = dirbroker(&["user", "add", "dave", "--name", "Dave"], Some(&config), "");
    assert_eq!(code(&add), 0, "{}", text(&add));
    assert!(reaches(&dir, 2, uri, "dave"), "a later write did not reach the joined provider");
    let o = dirbroker(&["cluster", "status"], Some(&config), "");
    assert_eq!(code(&o), 0, "exactly one writer after the join: {}", text(&o));
    let o = dirbroker(&["cluster", "compare"], Some(&config), "");
    assert_eq!(code(&o), 0, "{}", text(&o));

    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let o = dirbroker(&["testbed", "join", "--dir", empty.to_str().unwrap()], None, "");
    assert_eq!(code(&o), 1, "{}", text(&o));
    assert!(text(&o).contains("holds no replicated testbed"), "{}", text(&o));
}

/// `testbed up --providers 3`: three replicating slapds, one writer; the
/// CLI writes through the config that lists all three, and the entry is on
/// every provider; the read-only ones refuse a client's write themselves.
#[test]
fn replicated_testbed_through_the_cli() {
    let tmp = tempfile::Builder::new().prefix("dbr").tempdir_in("/tmp").unwrap();
    let dir = tmp.path().join("cluster");
    let up =
        dirbroker(&["testbed", "up", "--providers", "3", "--dir", dir.to_str().unwrap(), "--output", "json"], None, "");
    let _down = Down(dir.clone());
    assert_eq!(code(&up), 0, "{}", text(&up));
    let info: serde_json::Value = serde_json::from_slice(&up.stdout).unwrap();
    let providers = info["providers"].as_array().unwrap();
    assert_eq!(providers.len(), 3);
    assert_eq!(providers.iter().filter(|p| p["writer"] == true).count(), 1);
    let config = PathBuf::from(info["config"].as_str().unwrap());

    let status = dirbroker(&["testbed", "status", "--dir", dir.to_str().unwrap(), "--output", "json"], None, "");
    assert_eq!(code(&status), 0, "{}", text(&status));
    let st: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(st["providers"].as_array().unwrap().iter().filter(|p| p["running"] == true).count(), 3);

    let add = dirbroker(&["user", "add", "carol", "--name", "Carol"], Some(&config), "");
    assert_eq!(code(&add), 0, "{}", text(&add));
    // Every provider has her (ldapsearch as each provider's own rootdn).
    for (k, p) in providers.iter().enumerate() {
        assert!(reaches(&dir, k, p["uri"].as_str().unwrap(), "carol"), "carol did not reach p{}", k + 1);
    }
    // A client writing straight to a read-only provider is refused by slapd.
    let p2 = providers[1]["uri"].as_str().unwrap();
    let o = std::process::Command::new("ldapmodify")
        .args(["-x", "-H", p2, "-D", "cn=admin,dc=example,dc=org", "-y"])
        .arg(dir.join("p2").join("admin.pw"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(
                b"dn: uid=carol,ou=people,dc=example,dc=org\nchangetype: modify\nreplace: cn\ncn: Mallory\n",
            )?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("Server is unwilling to perform"), "{}", text(&o));

    let down = dirbroker(&["testbed", "down", "--dir", dir.to_str().unwrap()], None, "");
    assert_eq!(code(&down), 0, "{}", text(&down));
    assert!(!dir.exists());
}
