//! Seed 003 end to end with real OpenSSH: sshd asks `dirbroker-ssh
//! authorized-keys` (the node binary; one test wires the full tool's
//! `dirbroker ssh authorized-keys` instead) for user keys, ssh asks
//! `dirbroker-ssh known-hosts` for host keys, both straight from the
//! project's slapd.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use dirbroker_testbed::{Identity, Testbed, TestbedOptions};

use crate::support::*;

/// A slapd, the command installed for sshd, and the configs each side uses.
struct World {
    bed: Testbed,
    _tmp: tempfile::TempDir,
    scratch: tempfile::TempDir,
    install: Installed,
    /// Broker identity: administration.
    admin_cfg: PathBuf,
    /// Node identity, as sshd's AuthorizedKeysCommandUser (nobody) reads it.
    node_cfg: PathBuf,
}

impl World {
    async fn new(ssh_section: &str) -> World {
        must_be_root();
        let tmp = scratch_dir();
        let bed = Testbed::start(TestbedOptions::new(tmp.path().join("slapd"))).await.unwrap();
        let install = installed();
        let node_pw = std::fs::read_to_string(bed.password_file(Identity::NodeReader).unwrap()).unwrap();
        let pw = install.private_file_for("node.pw", &node_pw, "nobody");
        let node_cfg = install.public_file(
            "node.toml",
            &format!(
                "[directory]\nuris = [{:?}]\nbase_dn = \"dc=example,dc=org\"\nbind_dn = {:?}\nbind_password_file = {:?}\n\
                 connect_timeout_ms = 1000\nop_timeout_ms = 2000\n{ssh_section}",
                bed.uri(),
                bed.bind_dn(Identity::NodeReader).unwrap().unwrap().to_string(),
                pw.to_str().unwrap()
            ),
        );
        let admin_cfg = bed.dir().join("dirbroker.toml");
        World { bed, _tmp: tmp, scratch: scratch_dir(), install, admin_cfg, node_cfg }
    }

    fn admin(&self, args: &[&str], stdin: &str) -> std::process::Output {
        let o = dirbroker(args, Some(&self.admin_cfg), stdin);
        assert_eq!(code(&o), 0, "dirbroker {args:?}: {}", text(&o));
        o
    }

    /// sshd_config's AuthorizedKeysCommand as docs/ssh.md writes it.
    fn akc_command(&self) -> String {
        format!(
            "{} --config {} authorized-keys --fingerprint %f -- %u",
            self.install.node_bin.display(),
            self.node_cfg.display()
        )
    }

    fn sshd(&self) -> Sshd {
        Sshd::start(&self.akc_command(), "nobody")
    }

    /// The same wiring through the full tool.
    fn sshd_full_tool(&self) -> Sshd {
        let command = format!(
            "{} --config {} ssh authorized-keys --fingerprint %f -- %u",
            self.install.bin.display(),
            self.node_cfg.display()
        );
        Sshd::start(&command, "nobody")
    }

    /// A local account with a fresh key registered in LDAP through the CLI.
    fn user_with_key(&self) -> (LocalUser, PathBuf, String) {
        let local = LocalUser::create();
        let (key, public) = keypair(self.scratch.path(), &local.name, "");
        let pw = secret_file(self.scratch.path(), &format!("{}.pw", local.name), "pw-1234567", 0o600);
        self.admin(&["user", "add", &local.name, "--name", "Test User", "--password-file", pw.to_str().unwrap()], "");
        self.admin(&["user", "key", "add", &local.name, "-"], &public);
        (local, key, public)
    }
}

fn with_key(key: &Path) -> Vec<String> {
    vec![
        "-i".into(),
        key.display().to_string(),
        "-o".into(),
        "IdentitiesOnly=yes".into(),
        "-o".into(),
        "StrictHostKeyChecking=no".into(),
        "-o".into(),
        "UserKnownHostsFile=/dev/null".into(),
        "-o".into(),
        "GlobalKnownHostsFile=/dev/null".into(),
    ]
}

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn fingerprint_of(public: &str) -> String {
    dirbroker::ssh::SshKey::parse(public).unwrap().fingerprint()
}

#[tokio::test]
async fn login_with_a_key_only_in_ldap_and_not_after_removal() {
    let w = World::new("").await;
    let sshd = w.sshd();
    let (local, key, public) = w.user_with_key();
    let opts = with_key(&key);
    let o = ssh(sshd.port, &local.name, &refs(&opts), &[]);
    assert!(logged_in(&o), "login failed: {}\n--- sshd log ---\n{}", text(&o), sshd.log());

    // Another user's key does not open this account.
    let (other_key, _) = keypair(w.scratch.path(), "stranger", "");
    let o = ssh(sshd.port, &local.name, &refs(&with_key(&other_key)), &[]);
    assert!(!logged_in(&o));

    w.admin(&["user", "key", "remove", &local.name, &fingerprint_of(&public)], "");
    let o = ssh(sshd.port, &local.name, &refs(&opts), &[]);
    assert!(!logged_in(&o), "still logged in after the key was removed");
    assert!(text(&o).contains("Permission denied"), "{}", text(&o));
}

#[tokio::test]
async fn from_restrictions_are_honoured() {
    let w = World::new("[ssh]\nhost = \"thisnode\"\n").await;
    let sshd = w.sshd();
    let (local, key, _) = w.user_with_key();
    let opts = with_key(&key);

    // This node's host entry does not exist (renamed, deleted, mistyped):
    // its allowed-from list cannot be applied, so no keys at all (fail closed).
    let o = ssh(sshd.port, &local.name, &refs(&opts), &[]);
    assert!(!logged_in(&o), "{}", text(&o));
    let node = dirbroker(&["ssh", "authorized-keys", &local.name], Some(&w.node_cfg), "");
    assert_ne!(code(&node), 0);
    assert_eq!(String::from_utf8_lossy(&node.stdout), "");
    assert!(text(&node).contains("\"thisnode\" matches 0 entries"), "{}", text(&node));
    w.admin(&["host", "add", "thisnode", "--address", "127.0.0.1"], "");

    // The user's own list: a network we are not in.
    w.admin(&["user", "allow", &local.name, "--from", "10.9.9.0/24"], "");
    assert!(!logged_in(&ssh(sshd.port, &local.name, &refs(&opts), &[])));
    w.admin(&["user", "allow", &local.name, "--from", "127.0.0.1"], "");
    w.admin(&["user", "disallow", &local.name, "--from", "10.9.9.0/24"], "");
    let o = ssh(sshd.port, &local.name, &refs(&opts), &[]);
    assert!(logged_in(&o), "{}\n{}", text(&o), sshd.log());

    // The host's list (hosts.equiv): with both lists only common patterns count.
    w.admin(&["host", "allow", "thisnode", "--from", "10.8.0.0/16"], "");
    assert!(!logged_in(&ssh(sshd.port, &local.name, &refs(&opts), &[])));
    w.admin(&["user", "disallow", &local.name, "--from", "127.0.0.1"], "");
    assert!(!logged_in(&ssh(sshd.port, &local.name, &refs(&opts), &[])), "host list alone still excludes us");
    w.admin(&["host", "allow", "thisnode", "--from", "127.0.0.0/8"], "");
    let o = ssh(sshd.port, &local.name, &refs(&opts), &[]);
    assert!(logged_in(&o), "{}\n{}", text(&o), sshd.log());
}

/// `ldapadd` as the directory admin, the LDIF on stdin.
fn ldapadd(bed: &Testbed, ldif: &str) -> std::process::Output {
    let pw = bed.password_file(Identity::Admin).unwrap();
    Command::new("ldapadd")
        .args(["-x", "-H", &bed.uri(), "-D", "cn=admin,dc=example,dc=org", "-y"])
        .arg(&pw)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(ldif.as_bytes())?;
            c.wait_with_output()
        })
        .unwrap()
}

/// An entry another tool wrote (ldapadd, base64 value) serves logins too.
#[tokio::test]
async fn entry_written_by_ldapadd_works() {
    let w = World::new("").await;
    let sshd = w.sshd_full_tool();
    let local = LocalUser::create();
    let (key, public) = keypair(w.scratch.path(), &local.name, "");
    let b64 = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(&public)
    };
    let ldif = format!(
        "dn: uid={u},ou=people,dc=example,dc=org\nobjectClass: account\nobjectClass: ldapPublicKey\nuid: {u}\nsshPublicKey:: {b64}\n",
        u = local.name
    );
    let o = ldapadd(&w.bed, &ldif);
    assert!(o.status.success(), "ldapadd: {}", text(&o));
    let o = ssh(sshd.port, &local.name, &refs(&with_key(&key)), &[]);
    assert!(logged_in(&o), "{}\n{}", text(&o), sshd.log());

    // A second entry with the same uid (another tool, another branch): which
    // one is served would depend on the server's order, so neither is.
    let (_, impostor) = keypair(w.scratch.path(), "impostor", "");
    let ldif = format!(
        "dn: cn=Impostor,ou=people,dc=example,dc=org\nobjectClass: inetOrgPerson\nobjectClass: ldapPublicKey\n\
         cn: Impostor\nsn: Impostor\nuid: {u}\nsshPublicKey: {k}\n",
        u = local.name,
        k = impostor.trim()
    );
    let o = ldapadd(&w.bed, &ldif);
    assert!(o.status.success(), "ldapadd: {}", text(&o));
    let o = ssh(sshd.port, &local.name, &refs(&with_key(&key)), &[]);
    assert!(!logged_in(&o), "an ambiguous uid must not log in: {}", text(&o));
    let node = dirbroker(&["ssh", "authorized-keys", &local.name], Some(&w.node_cfg), "");
    assert_ne!(code(&node), 0);
    assert_eq!(String::from_utf8_lossy(&node.stdout), "");
    assert!(text(&node).contains("has the same uid"), "{}", text(&node));
}

/// An entry another tool wrote without dirbroker's object classes: `user
/// allow` adds the classes it lacks (issue #14), and a write the schema still
/// refuses (a `cn` on an `account`) names the rule it broke, not a generic
/// "constraint violation".
#[tokio::test]
async fn schema_refusal_names_the_ldap_result() {
    let w = World::new("").await;
    let ldif = "dn: uid=plain,ou=people,dc=example,dc=org\nobjectClass: account\nuid: plain\n";
    let o = ldapadd(&w.bed, ldif);
    assert!(o.status.success(), "ldapadd: {}", text(&o));
    let o = dirbroker(&["user", "allow", "plain", "--from", "10.0.0.0/8"], Some(&w.admin_cfg), "");
    assert_eq!(code(&o), 0, "{}", text(&o));
    let o = dirbroker(&["user", "modify", "plain", "--name", "Plain"], Some(&w.admin_cfg), "");
    assert_eq!(code(&o), 1, "{}", text(&o));
    let said = text(&o);
    assert!(
        said.contains("object class violation on uid=plain,ou=people,dc=example,dc=org (LDAP result 65)"),
        "{said}"
    );
    assert!(!said.contains("constraint violation"), "{said}");
}

#[tokio::test]
async fn known_hosts_command_checks_the_server_key() {
    let w = World::new("").await;
    let sshd = w.sshd();
    let (local, key, _) = w.user_with_key();
    // Clients read host keys anonymously.
    let hosts_cfg = w.install.public_file(
        "hosts.toml",
        &format!("[directory]\nuris = [{:?}]\nbase_dn = \"dc=example,dc=org\"\nop_timeout_ms = 2000\n", w.bed.uri()),
    );
    let khc =
        format!("KnownHostsCommand={} --config {} known-hosts %H", w.install.node_bin.display(), hosts_cfg.display());
    let strict = |key: &Path| {
        vec![
            "-i".to_string(),
            key.display().to_string(),
            "-o".into(),
            "IdentitiesOnly=yes".into(),
            "-o".into(),
            "StrictHostKeyChecking=yes".into(),
            "-o".into(),
            "UserKnownHostsFile=/dev/null".into(),
            "-o".into(),
            "GlobalKnownHostsFile=/dev/null".into(),
            "-o".into(),
            khc.clone(),
        ]
    };
    // Not in LDAP yet: strict checking refuses.
    let o = ssh(sshd.port, &local.name, &refs(&strict(&key)), &[]);
    assert!(!logged_in(&o));
    assert!(text(&o).contains("Host key verification failed"), "{}", text(&o));

    // SSHHKTLDAP: load the server's host key from its key directory.
    w.admin(
        &["host", "load", "testnode", "--dir", sshd.host_key_dir().to_str().unwrap(), "--address", "127.0.0.1"],
        "",
    );
    let o = ssh(sshd.port, &local.name, &refs(&strict(&key)), &[]);
    assert!(logged_in(&o), "{}\n{}", text(&o), sshd.log());

    // Host keys from another machine over plain ldap:// could be forged on
    // the way: refused before connecting (a TEST-NET address, never reached),
    // the login fails; StartTLS, ldaps:// or loopback are needed.
    let remote = w.install.public_file(
        "remote-hosts.toml",
        "[directory]\nuris = [\"ldap://192.0.2.7:389\"]\nbase_dn = \"dc=example,dc=org\"\n",
    );
    let o = Command::new(&w.install.node_bin)
        .args(["--config", remote.to_str().unwrap(), "known-hosts", "testnode"])
        .output()
        .unwrap();
    assert_eq!((o.status.code(), o.stdout.is_empty()), (Some(4), true), "{}", text(&o));
    assert!(text(&o).contains("could be forged on the way"), "{}", text(&o));
    let remote_khc =
        format!("KnownHostsCommand={} --config {} known-hosts %H", w.install.node_bin.display(), remote.display());
    let mut opts = strict(&key);
    *opts.last_mut().unwrap() = remote_khc;
    assert!(!logged_in(&ssh(sshd.port, &local.name, &refs(&opts), &[])), "host key taken over plain ldap://");

    // LDAP now holds another key: the real server looks like a man in the middle.
    let other = w.scratch.path().join("otherhost");
    std::fs::create_dir(&other).unwrap();
    keypair(&other, "ssh_host_ed25519_key", "");
    w.admin(&["host", "load", "testnode", "--dir", other.to_str().unwrap()], "");
    let o = ssh(sshd.port, &local.name, &refs(&strict(&key)), &[]);
    assert!(!logged_in(&o), "connected although LDAP holds a different host key");
    assert!(text(&o).contains("Host key verification failed"), "{}", text(&o));
}

#[tokio::test]
async fn directory_down_denies_unless_a_fresh_cache_answers() {
    let cache_world = World::new("").await;
    let cache_dir = cache_world.install.dir_for("cache", "nobody");
    drop(cache_world);

    // Without a cache: login is refused, and within the timeouts.
    let mut w = World::new("").await;
    let sshd = w.sshd();
    let (local, key, _) = w.user_with_key();
    let opts = with_key(&key);
    assert!(logged_in(&ssh(sshd.port, &local.name, &refs(&opts), &[])));
    w.bed.stop();
    let started = Instant::now();
    let o = ssh(sshd.port, &local.name, &refs(&opts), &[]);
    assert!(!logged_in(&o), "logged in with the directory down and no cache");
    assert!(started.elapsed() < Duration::from_secs(20), "took {:?}", started.elapsed());
    let _ = cache_dir;

    // With a cache: the answer from the last successful lookup is served.
    let w = World::new("").await;
    let cache = w.install.dir_for("cache", "nobody");
    let mut cfg = std::fs::read_to_string(&w.node_cfg).unwrap();
    cfg.push_str(&format!("\n[ssh]\ncache_dir = {:?}\ncache_ttl_s = 600\n", cache.to_str().unwrap()));
    std::fs::write(&w.node_cfg, cfg).unwrap();
    let mut w = w;
    let sshd = w.sshd();
    let (local, key, _) = w.user_with_key();
    let opts = with_key(&key);
    assert!(logged_in(&ssh(sshd.port, &local.name, &refs(&opts), &[])), "{}", sshd.log());
    assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 1, "one cache file after a login");
    w.bed.stop();
    let o = ssh(sshd.port, &local.name, &refs(&opts), &[]);
    assert!(logged_in(&o), "cached keys not served: {}\n{}", text(&o), sshd.log());
    // A user never seen while the directory was up gets nothing from the cache.
    let (stranger, skey) = (LocalUser::create(), keypair(w.scratch.path(), "s", "").0);
    assert!(!logged_in(&ssh(sshd.port, &stranger.name, &refs(&with_key(&skey)), &[])));
}

#[tokio::test]
async fn escrowed_key_loaded_into_a_real_agent_logs_in() {
    let w = World::new("").await;
    let sshd = w.sshd();
    let local = LocalUser::create();
    let pw = secret_file(w.scratch.path(), "user.pw", "ldap-pw-98765", 0o600);
    w.admin(&["user", "add", &local.name, "--name", "Escrow User", "--password-file", pw.to_str().unwrap()], "");

    // A key without a passphrase is refused.
    let (plain, _) = keypair(w.scratch.path(), "plain", "");
    let o = dirbroker(&["ssh", "escrow", "put", &local.name, plain.to_str().unwrap()], Some(&w.admin_cfg), "");
    assert_eq!(code(&o), 2, "{}", text(&o));
    assert!(text(&o).contains("passphrase"), "{}", text(&o));

    let (key, public) = keypair(w.scratch.path(), "escrowed", "correct-passphrase");
    w.admin(&["user", "key", "add", &local.name, "-"], &public);
    w.admin(&["ssh", "escrow", "put", &local.name, key.to_str().unwrap()], "");
    std::fs::remove_file(&key).unwrap();

    // Another user cannot fetch it; a wrong password cannot either.
    let o = dirbroker(&["ssh", "agent-load", &local.name], Some(&w.admin_cfg), "wrong-password\n");
    assert_ne!(code(&o), 0);

    let agent_dir = scratch_dir();
    let sock = agent_dir.path().join("agent.sock");
    let mut agent =
        Command::new("ssh-agent").arg("-D").arg("-a").arg(&sock).stdout(std::process::Stdio::null()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !sock.exists() && Instant::now() < deadline {
        dirbroker::clock::sleep(Duration::from_millis(20));
    }
    let askpass = agent_dir.path().join("askpass.sh");
    std::fs::write(&askpass, "#!/bin/sh\necho correct-passphrase\n").unwrap();
    std::fs::set_permissions(&askpass, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let load = Command::new(BIN)
        .args(["ssh", "agent-load", &local.name, "--password-file", pw.to_str().unwrap()])
        .env("DIRBROKER_CONFIG", &w.admin_cfg)
        .env("SSH_AUTH_SOCK", &sock)
        .env("SSH_ASKPASS", &askpass)
        .env("SSH_ASKPASS_REQUIRE", "force")
        .env("DISPLAY", ":0")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(load.status.success(), "agent-load: {}", text(&load));
    let listed = Command::new("ssh-add").arg("-l").env("SSH_AUTH_SOCK", &sock).output().unwrap();
    assert!(stdout(&listed).contains(&fingerprint_of(&public)), "{}", text(&listed));

    let o = ssh(
        sshd.port,
        &local.name,
        &[
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "GlobalKnownHostsFile=/dev/null",
        ],
        &[("SSH_AUTH_SOCK", sock.to_str().unwrap())],
    );
    let _ = agent.kill();
    let _ = agent.wait();
    assert!(logged_in(&o), "{}\n{}", text(&o), sshd.log());
}

/// The command's own contract, without sshd: exactly the key lines on
/// stdout, nothing for unknown or disabled users, filters, closed pipes.
#[tokio::test]
async fn authorized_keys_output_contract() {
    let w = World::new("").await;
    let (local, _, public) = w.user_with_key();
    let (_, second) = keypair(w.scratch.path(), "second", "");
    w.admin(&["user", "key", "add", &local.name, "-"], &second);
    let node = |args: &[&str]| dirbroker(args, Some(&w.node_cfg), "");

    let o = node(&["ssh", "authorized-keys", &local.name]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let mut lines: Vec<String> = stdout(&o).lines().map(str::to_string).collect();
    lines.sort();
    let mut want = vec![public.clone(), second.clone()];
    want.sort();
    assert_eq!(lines, want);

    let o = node(&["ssh", "authorized-keys", &local.name, "--fingerprint", &fingerprint_of(&second)]);
    assert_eq!(stdout(&o).trim(), second);
    // The plain form sshd uses takes a fast path past the full argument parser;
    // any other form goes through it. Both answer alike.
    let slow =
        node(&["--output", "text", "ssh", "authorized-keys", &local.name, "--fingerprint", &fingerprint_of(&second)]);
    assert_eq!(stdout(&slow), stdout(&o));
    let slow = node(&["--output", "text", "ssh", "authorized-keys", &local.name]);
    let mut slow_lines: Vec<String> = stdout(&slow).lines().map(str::to_string).collect();
    slow_lines.sort();
    assert_eq!(slow_lines, want);

    // The node binary answers exactly as the full tool: same lines, same exit codes.
    let fp = fingerprint_of(&second);
    let node_bin =
        |args: &[&str]| Command::new(&w.install.node_bin).arg("--config").arg(&w.node_cfg).args(args).output().unwrap();
    let upper = local.name.to_uppercase();
    for args in [
        vec![local.name.as_str()],
        vec![local.name.as_str(), "--fingerprint", fp.as_str()],
        vec![local.name.as_str(), "--key", "AAAAnot-a-key"],
        vec!["no-such-user"],
        vec!["*)(uid=*"],
        vec![upper.as_str()],
    ] {
        let full = node(&[&["ssh", "authorized-keys"][..], &args[..]].concat());
        let small = node_bin(&[&["authorized-keys"][..], &args[..]].concat());
        assert_eq!((code(&small), stdout(&small)), (code(&full), stdout(&full)), "{args:?}: {}", text(&small));
    }
    let o = Command::new(&w.install.node_bin).args(["--config", "/nonexistent.toml", "authorized-keys", "x"]).output();
    let o = o.unwrap();
    assert_eq!((code(&o), stdout(&o).as_str()), (4, ""), "{}", text(&o));
    assert!(text(&o).contains("/nonexistent.toml"), "{}", text(&o));
    let o = Command::new(&w.install.node_bin).args(["authorized-keys"]).output().unwrap();
    assert_eq!((code(&o), stdout(&o).as_str()), (2, ""), "{}", text(&o));

    for nobody in ["no-such-user", "*", "*)(uid=*", &local.name.to_uppercase()] {
        let o = node(&["ssh", "authorized-keys", nobody]);
        assert_eq!(code(&o), 0, "{nobody}: {}", text(&o));
        assert_eq!(stdout(&o), "", "{nobody}");
    }

    // Disabled and expired accounts get no keys.
    let admin = w.bed.directory_config(Identity::Admin).unwrap();
    let dir = dirbroker::directory::Directory::connect(admin).await.unwrap();
    let dn = w.bed.layout().people.child("uid", &local.name).unwrap();
    let set = |attr: &str, v: &str| vec![ldap3::Mod::Replace(attr.as_bytes().to_vec(), [v.as_bytes().to_vec()].into())];
    dir.modify(&dn, set("dirbrokerDisabled", "TRUE")).await.unwrap();
    assert_eq!(stdout(&node(&["ssh", "authorized-keys", &local.name])), "");
    dir.modify(&dn, set("dirbrokerDisabled", "FALSE")).await.unwrap();
    dir.modify(&dn, set("dirbrokerNotAfter", "20200101000000Z")).await.unwrap();
    assert_eq!(stdout(&node(&["ssh", "authorized-keys", &local.name])), "");
    dir.modify(&dn, set("dirbrokerNotAfter", "29991231235959Z")).await.unwrap();
    assert_eq!(stdout(&node(&["ssh", "authorized-keys", &local.name])).lines().count(), 2);

    // A reader that goes away early (SIGPIPE/EPIPE) is not a crash.
    for (bin, verb) in
        [(&w.install.bin, &["ssh", "authorized-keys"][..]), (&w.install.node_bin, &["authorized-keys"][..])]
    {
        let mut child = Command::new(bin)
            .args(["--config", w.node_cfg.to_str().unwrap()])
            .args(verb)
            .arg(&local.name)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let status = child.wait().unwrap();
        assert!(status.success(), "{}: {status:?}", bin.display());
    }

    // The node identity cannot change anything.
    let o = node(&["user", "key", "add", &local.name, "-"]);
    assert_ne!(code(&o), 0);
}

/// `user key add/list/remove`: ssh-keygen is the judge of fingerprints and
/// sizes; bad keys are refused with nothing written.
#[tokio::test]
async fn key_administration_matches_ssh_keygen() {
    let w = World::new("").await;
    let local = LocalUser::create();
    w.admin(&["user", "add", &local.name, "--name", "Key Owner"], "");
    let dir = w.scratch.path();
    let keygen = |name: &str, args: &[&str]| {
        let key = dir.join(name);
        let ok =
            Command::new("ssh-keygen").args(["-q", "-N", "", "-C", name, "-f"]).arg(&key).args(args).status().unwrap();
        assert!(ok.success());
        key.with_extension("pub")
    };
    let ed = keygen("k-ed25519", &["-t", "ed25519"]);
    let rsa = keygen("k-rsa3072", &["-t", "rsa", "-b", "3072"]);
    let ecdsa = keygen("k-ecdsa", &["-t", "ecdsa", "-b", "384"]);
    let weak = keygen("k-rsa1024", &["-t", "rsa", "-b", "1024"]);
    let mut all = String::new();
    for f in [&ed, &rsa, &ecdsa] {
        all.push_str(&std::fs::read_to_string(f).unwrap());
    }
    w.admin(&["user", "key", "add", &local.name, "-"], &all);
    let listed = stdout(&w.admin(&["user", "key", "list", &local.name], ""));
    for f in [&ed, &rsa, &ecdsa] {
        let judge = Command::new("ssh-keygen").arg("-l").arg("-f").arg(f).output().unwrap();
        let line = stdout(&judge).trim().to_string();
        assert!(listed.lines().any(|l| l == line), "ssh-keygen says {line:?}; we list:\n{listed}");
    }

    // Refused, each with the line it is on, and then nothing at all is added.
    let before = listed.lines().count();
    let weak_line = std::fs::read_to_string(&weak).unwrap();
    let extra = std::fs::read_to_string(keygen("k-extra", &["-t", "ed25519"])).unwrap();
    let bad_batches = [
        (format!("{extra}{weak_line}"), "2048"),
        (format!("{extra}ssh-ed25519 AAAAnotbase64!! x\n"), "line 2"),
        (format!("{extra}{extra}"), "twice"),
        (std::fs::read_to_string(&ed).unwrap(), "already"),
        ("ssh-dss AAAAB3NzaC1kc3MAAACBAP1/U4EddRIpUt9KnC7s5Of2EbdSPO9EAMMeP4C2USZpRV1AIlH7WT2NWPq/xfW6MPbLm1Vs14E7gB00b/JmYLdrmVClpJ+f6AR7ECLCT7up1/63xhv4O1fnxqimFQ8E+4P208UewwI1VBNaFpEy9nXzrith1yrv8iIDGZ3RSAHHAAAAFQCXYFCPFSMLzLKSuYKi64QL8Fgc9QAAAIEA9+GghdabPd7LvKtcNrhXuXmUr7v6OuqC+VdMCz0HgmdRWVeOutRZT+ZxBxCBgLRJFnEj6EwoFhO3zwkyjMim4TwWeotUfI0o4KOuHiuzpnWRbqN/C/ohNWLx+2J6ASQ7zKTxvqhRkImog9/hWuWfBpKLZl6Ae1UlZAFMO/7PSSoAAACBAPVdDpMOlkKmGdoUZKrRF0BRlZAGvQ8dEu+JsWOIdzj3CC4uUAcZSgjSxKl2rcbqCFzwRGrMjBeS9kw1B5c9iFdpj+jyhcZ/JDBzrU3+Y4FGDvSsBkYNdUaAmNAJBAQ5S8n6bXPAbZnmSNvlxNGbNiF8/L7Y6uw7tw1NFZ2hpwHN user\n".to_string(), "DSA"),
        ("-----BEGIN OPENSSH PRIVATE KEY-----\n".to_string(), "line 1"),
    ];
    for (input, why) in bad_batches {
        let o = dirbroker(&["user", "key", "add", &local.name, "-"], Some(&w.admin_cfg), &input);
        assert_eq!(code(&o), 2, "{why}: {}", text(&o));
        assert!(text(&o).contains(why), "expected {why:?} in: {}", text(&o));
    }
    let after = stdout(&w.admin(&["user", "key", "list", &local.name], ""));
    assert_eq!(after.lines().count(), before, "a refused batch changed the keys");

    // Remove by the fingerprint ssh-keygen shows.
    let fp = stdout(&Command::new("ssh-keygen").arg("-l").arg("-f").arg(&rsa).output().unwrap())
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string();
    w.admin(&["user", "key", "remove", &local.name, &fp], "");
    let left = stdout(&w.admin(&["user", "key", "list", &local.name], ""));
    assert!(!left.contains(&fp));
    assert_eq!(left.lines().count(), before - 1);
    let o = dirbroker(&["user", "key", "remove", &local.name, &fp], Some(&w.admin_cfg), "");
    assert_eq!(code(&o), 1);
}
