//! SSSD as a judge: Debian's sssd, configured by `dirbroker node sssd-conf`
//! and nothing else, reads the test slapd as the node identity, in its own
//! mount namespace (testbed's `harness::sssd`). It must see directory-only
//! users and their groups as a node would, agree with `dirbroker-ssh` on
//! keys, let such a user log in to a real sshd wired by `node sssd-conf
//! --sshd`, and refuse disabled and expired users.

use std::path::{Path, PathBuf};

use dirbroker_testbed::harness::sssd::{SssdNode, unavailable};
use dirbroker_testbed::{Identity, Testbed, TestbedOptions};

use crate::support::*;

/// POSIX people and groups, written as an operator would with ldapadd (until
/// `user add`/`group add` make them; switch this one function then).
/// `keys` are (uid, public key) pairs.
fn add_posix_people(bed: &Testbed, keys: &[(&str, &str)]) {
    let key_lines = |uid: &str| -> String {
        keys.iter().filter(|(u, _)| *u == uid).map(|(_, k)| format!("sshPublicKey: {k}\n")).collect()
    };
    let person = |uid: &str, n: u32, cn: &str, extra: &str| -> String {
        format!(
            "dn: uid={uid},ou=people,dc=example,dc=org\nobjectClass: inetOrgPerson\nobjectClass: posixAccount\n\
             objectClass: ldapPublicKey\nobjectClass: dirbrokerUser\nuid: {uid}\ncn: {cn}\nsn: {cn}\n\
             uidNumber: {n}\ngidNumber: {n}\nhomeDirectory: /\nloginShell: /bin/sh\ngecos: {cn}\n{extra}{keys}\n\
             dn: cn={uid},ou=groups,dc=example,dc=org\nobjectClass: posixGroup\ncn: {uid}\ngidNumber: {n}\n\n",
            keys = key_lines(uid)
        )
    };
    let mut ldif = person("dana", 20001, "Dana Scully", "");
    ldif.push_str(
        "dn: cn=xfiles,ou=groups,dc=example,dc=org\nobjectClass: posixGroup\ncn: xfiles\ngidNumber: 30000\n\
         memberUid: dana\nmemberUid: fox\n\n\
         dn: cn=lab,ou=groups,dc=example,dc=org\nobjectClass: posixGroup\ncn: lab\ngidNumber: 30001\nmemberUid: dana\n",
    );
    let o = ldap_admin(bed, "ldapadd", &ldif);
    assert!(o.status.success(), "ldapadd: {}", text(&o));
    // The others as an operator makes them: the CLI, then a disabled user,
    // an expired one and one not valid before 2100.
    let cfg = bed.dir().join("dirbroker.toml");
    let keys_file = scratch_dir();
    for (uid, name, state) in [
        ("fox", "Fox Mulder", &["user", "disable", "fox"][..]),
        ("gil", "Gil Expired", &["user", "modify", "gil", "--not-after", "2020-01-01"]),
        ("hank", "Hank Early", &["user", "modify", "hank", "--not-before", "2100-01-01T00:00:00Z"]),
    ] {
        let file = keys_file.path().join(uid);
        std::fs::write(&file, key_lines(uid).replace("sshPublicKey: ", "")).unwrap();
        for args in
            [&["user", "add", uid, "--name", name][..], &["user", "key", "add", uid, file.to_str().unwrap()], state]
        {
            let o = dirbroker(args, Some(&cfg), "");
            assert_eq!(code(&o), 0, "{args:?}: {}", text(&o));
        }
    }
    let shown = dirbroker(&["user", "show", "gil"], Some(&cfg), "");
    assert!(stdout(&shown).contains("valid:    from - until 2020-01-01T00:00:00Z"), "{}", text(&shown));
}

fn ldap_admin(bed: &Testbed, tool: &str, stdin: &str) -> std::process::Output {
    let dn = bed.bind_dn(Identity::Admin).unwrap().unwrap().to_string();
    let pw = bed.password_file(Identity::Admin).unwrap();
    dirbroker_testbed::harness::run_with_stdin(
        std::process::Command::new(tool).args(["-x", "-H", &bed.uri(), "-D", &dn, "-y"]).arg(pw),
        stdin,
    )
}

fn lines(o: &std::process::Output) -> Vec<String> {
    let mut v: Vec<String> = stdout(o).lines().map(str::to_string).collect();
    v.sort();
    v
}

fn mode(p: &Path) -> u32 {
    std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(p).unwrap().permissions()) & 0o777
}

#[tokio::test]
async fn sssd_sees_the_directory_as_a_node_and_sshd_logs_in_through_it() {
    must_be_root();
    if let Some(why) = unavailable() {
        // CI installs sssd (scripts/install-deps.sh): there a missing SSSD is a failure.
        assert!(std::env::var_os("CI").is_none(), "SSSD cannot run, and CI must run this test: {why}");
        eprintln!("SKIPPED sssd_sees_the_directory_as_a_node…: {why}");
        return;
    }
    let host_nsswitch = std::fs::read("/etc/nsswitch.conf").unwrap();

    let tmp = scratch_dir();
    let mut opts = TestbedOptions::new(tmp.path().join("slapd"));
    opts.tls = true;
    let bed = Testbed::start(opts).await.unwrap();
    let keys_dir = scratch_dir();
    let (dana_key, dana_pub) = keypair(keys_dir.path(), "dana", "");
    let (_, dana_pub2) = keypair(keys_dir.path(), "dana-laptop", "");
    let (fox_key, fox_pub) = keypair(keys_dir.path(), "fox", "");
    let (gil_key, gil_pub) = keypair(keys_dir.path(), "gil", "");
    let (hank_key, hank_pub) = keypair(keys_dir.path(), "hank", "");
    add_posix_people(
        &bed,
        &[("dana", &dana_pub), ("dana", &dana_pub2), ("fox", &fox_pub), ("gil", &gil_pub), ("hank", &hank_pub)],
    );

    // The node: dirbroker-ssh installed where sshd accepts it, its config and
    // the node identity's password readable by the AuthorizedKeysCommandUser.
    let install = installed();
    let node_pw = std::fs::read_to_string(bed.password_file(Identity::NodeReader).unwrap()).unwrap();
    let pw = install.private_file_for("node.pw", &node_pw, "nobody");
    let ca = install.public_file("ldap-ca.pem", &std::fs::read_to_string(&bed.tls().unwrap().ca_file).unwrap());
    let node_cfg = install.public_file(
        "node.toml",
        &format!(
            "[directory]\nuris = [{uri:?}]\nbase_dn = \"dc=example,dc=org\"\nbind_dn = {dn:?}\n\
             bind_password_file = {pw:?}\nconnect_timeout_ms = 2000\nop_timeout_ms = 5000\n\n\
             [directory.tls]\nca_file = {ca:?}\n",
            uri = bed.client_uri(),
            dn = bed.bind_dn(Identity::NodeReader).unwrap().unwrap().to_string(),
            pw = pw.to_str().unwrap(),
            ca = ca.to_str().unwrap(),
        ),
    );

    // The generator: printed without the password; --out writes it 0600.
    let printed = dirbroker(&["--config", node_cfg.to_str().unwrap(), "node", "sssd-conf"], None, "");
    assert_eq!(code(&printed), 0, "{}", text(&printed));
    assert!(!stdout(&printed).contains(node_pw.trim()), "the password must not be printed");
    assert!(stdout(&printed).contains("ldap_access_filter = "), "{}", stdout(&printed));
    let conf_dir = scratch_dir();
    let conf: PathBuf = conf_dir.path().join("sssd.conf");
    let written = dirbroker(
        &["--config", node_cfg.to_str().unwrap(), "node", "sssd-conf", "--out", conf.to_str().unwrap()],
        None,
        "",
    );
    assert_eq!(code(&written), 0, "{}", text(&written));
    assert_eq!(mode(&conf), 0o600);
    let sshd_lines = dirbroker(
        &[
            "--config",
            node_cfg.to_str().unwrap(),
            "node",
            "sssd-conf",
            "--sshd",
            "--ssh-command",
            install.node_bin.to_str().unwrap(),
            "--keys-user",
            "nobody",
        ],
        None,
        "",
    );
    assert_eq!(code(&sshd_lines), 0, "{}", text(&sshd_lines));

    let node = SssdNode::start(&conf, "dana");

    // NSS, as a node sees it.
    let o = node.run("getent", &["passwd", "dana"]);
    assert_eq!(stdout(&o), "dana:*:20001:20001:Dana Scully:/:/bin/sh\n", "{}\n{}", text(&o), node.log());
    let o = node.run("getent", &["group", "xfiles"]);
    assert_eq!(stdout(&o), "xfiles:*:30000:dana,fox\n", "{}", text(&o));
    let o = node.run("id", &["dana"]);
    assert_eq!(
        stdout(&o),
        "uid=20001(dana) gid=20001(dana) groups=20001(dana),30000(xfiles),30001(lab)\n",
        "{}",
        text(&o)
    );
    // A user and a group made with the dirbroker CLI itself (ids from the
    // directory's counter, a user-private group) are what the node sees.
    let admin_cfg = bed.dir().join("dirbroker.toml");
    let add = dirbroker(&["user", "add", "erin", "--name", "Erin Reyes", "--output", "json"], Some(&admin_cfg), "");
    assert_eq!(code(&add), 0, "{}", text(&add));
    let made: serde_json::Value = serde_json::from_slice(&add.stdout).unwrap();
    let n = made["posix"]["uid_number"].as_u64().unwrap();
    assert_eq!(made["posix"]["gid_number"].as_u64(), Some(n), "{made}");
    for args in [vec!["group", "add", "ops"], vec!["group", "add-member", "ops", "erin"]] {
        let o = dirbroker(&args, Some(&admin_cfg), "");
        assert_eq!(code(&o), 0, "{args:?}: {}", text(&o));
    }
    let o = node.run("getent", &["passwd", "erin"]);
    assert!(stdout(&o).starts_with(&format!("erin:*:{n}:{n}:")), "{}\n{}", text(&o), node.log());
    let o = node.run("id", &["erin"]);
    assert!(stdout(&o).starts_with(&format!("uid={n}(erin) gid={n}(erin) groups={n}(erin),")), "{}", text(&o));
    assert!(stdout(&o).contains("(ops)"), "{}", text(&o));

    // The host's own NSS knows nothing of it.
    let o = std::process::Command::new("getent").args(["passwd", "dana"]).output().unwrap();
    assert_eq!(code(&o), 2, "the host must not see directory users: {}", text(&o));

    // Keys: SSSD and dirbroker-ssh agree.
    let sss = node.run("sss_ssh_authorizedkeys", &["dana"]);
    assert_eq!(code(&sss), 0, "{}", text(&sss));
    let ours = std::process::Command::new(&install.node_bin)
        .args(["--config", node_cfg.to_str().unwrap(), "authorized-keys", "dana"])
        .output()
        .unwrap();
    assert_eq!(code(&ours), 0, "{}", text(&ours));
    let mut both = vec![dana_pub.clone(), dana_pub2.clone()];
    both.sort();
    assert_eq!(lines(&sss), both, "sss_ssh_authorizedkeys");
    assert_eq!(lines(&ours), lines(&sss), "dirbroker-ssh and sss_ssh_authorizedkeys disagree");

    // sshd wired as `node sssd-conf --sshd` prints: keys from dirbroker-ssh,
    // the account from SSSD. dana exists only in the directory.
    let sshd = node.sshd(&stdout(&sshd_lines));
    let o = sshd.ssh("dana", &dana_key, "id -un; id -Gn; echo login-ok");
    assert_eq!(stdout(&o), "dana\ndana xfiles lab\nlogin-ok\n", "{}\n{}", text(&o), sshd.log());
    // A disabled user is refused: dirbroker-ssh gives no key, so sshd never
    // accepts one (the access filter would refuse too, below).
    let o = std::process::Command::new(&install.node_bin)
        .args(["--config", node_cfg.to_str().unwrap(), "authorized-keys", "fox"])
        .output()
        .unwrap();
    assert_eq!((code(&o), stdout(&o)), (0, String::new()), "{}", text(&o));
    let o = sshd.ssh("fox", &fox_key, "echo login-ok");
    assert_ne!(code(&o), 0, "fox is disabled: {}", text(&o));
    assert!(!stdout(&o).contains("login-ok"));
    let log = sshd.log();
    assert!(!log.contains("Accepted publickey for fox"), "{log}");
    assert!(
        log.contains("Failed publickey for fox") || log.contains("Connection closed by authenticating user fox"),
        "{log}"
    );

    // Not valid before 2100: SSSD has no such check (docs/nodes.md), so only
    // dirbroker-ssh keeps hank out, by giving no keys.
    let o = sshd.ssh("hank", &hank_key, "echo login-ok");
    assert_ne!(code(&o), 0, "hank is not yet valid: {}", text(&o));
    assert!(!sshd.log().contains("Accepted publickey for hank"), "{}", sshd.log());

    // SSSD's own access control, alone: keys from sss_ssh_authorizedkeys
    // (which serves keys of disabled users too), account from pam_sss.
    let sss_only = node.sshd(
        "AuthorizedKeysCommand /usr/bin/sss_ssh_authorizedkeys %u\nAuthorizedKeysCommandUser nobody\nUsePAM yes\n\
         PubkeyAuthentication yes\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n",
    );
    let o = sss_only.ssh("dana", &dana_key, "echo login-ok");
    assert_eq!(stdout(&o), "login-ok\n", "{}\n{}", text(&o), sss_only.log());
    for (user, key, why) in
        [("fox", &fox_key, "disabled: ldap_access_filter"), ("gil", &gil_key, "expired: expire/nds")]
    {
        let o = sss_only.ssh(user, key, "echo login-ok");
        assert_ne!(code(&o), 0, "{user} ({why}) logged in: {}", text(&o));
        let log = sss_only.log();
        assert!(
            log.contains("Accepted key ED25519")
                && log.contains(&format!("Access denied for user {user} by PAM account configuration")),
            "{user} ({why}) must be refused by SSSD's account check:\n{log}\n{}",
            node.log()
        );
    }
    // …and it has no "not before": hank's account passes SSSD's check.
    let o = sss_only.ssh("hank", &hank_key, "echo login-ok");
    assert_eq!(
        stdout(&o),
        "login-ok\n",
        "SSSD alone lets a not-yet-valid user in (the gap dirbroker-ssh closes): {}",
        text(&o)
    );
    // Which check refused (SSSD's back-end log): the access filter for the
    // disabled user, the nds expiry check for the expired one.
    let be = node.log_file("sssd_dirbroker.log");
    assert!(be.contains("User [fox@dirbroker] was not found with the specified filter. Denying access."), "{be}");
    assert!(be.lines().any(|l| l.contains("[nds_check_expired]") && l.contains("NDS account expired")), "{be}");
    drop(sss_only);
    drop(sshd);
    drop(node);
    assert_eq!(std::fs::read("/etc/nsswitch.conf").unwrap(), host_nsswitch, "the host's nsswitch.conf changed");
}

/// The generator's refusals, without SSSD: an anonymous configuration, a
/// password file others can read, and `--output json`; and its help has examples.
#[test]
fn sssd_conf_refuses_what_sssd_could_not_use_safely() {
    let tmp = scratch_dir();
    let anon = tmp.path().join("anon.toml");
    std::fs::write(&anon, "[directory]\nuris = [\"ldaps://ldap.example.org\"]\nbase_dn = \"dc=example,dc=org\"\n")
        .unwrap();
    let o = dirbroker(&["--config", anon.to_str().unwrap(), "node", "sssd-conf"], None, "");
    assert_eq!(code(&o), 4, "{}", text(&o));
    assert!(text(&o).contains("anonymously"), "{}", text(&o));

    let pw = secret_file(tmp.path(), "node.pw", "s3cret-node-pw\n", 0o644);
    let cfg = tmp.path().join("node.toml");
    std::fs::write(
        &cfg,
        format!(
            "[directory]\nuris = [\"ldaps://ldap.example.org\"]\nbase_dn = \"dc=example,dc=org\"\n\
             bind_dn = \"cn=node-reader,ou=system,dc=example,dc=org\"\nbind_password_file = {:?}\n",
            pw.to_str().unwrap()
        ),
    )
    .unwrap();
    let out = tmp.path().join("sssd.conf");
    let o =
        dirbroker(&["--config", cfg.to_str().unwrap(), "node", "sssd-conf", "--out", out.to_str().unwrap()], None, "");
    assert_eq!(code(&o), 4, "a password file readable by others: {}", text(&o));
    assert!(text(&o).contains("chmod 600"), "{}", text(&o));
    assert!(!out.exists());

    std::fs::set_permissions(&pw, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let o = dirbroker(&["--config", cfg.to_str().unwrap(), "--output", "json", "node", "sssd-conf"], None, "");
    assert_eq!(code(&o), 2, "{}", text(&o));
    let o = dirbroker(&["--config", cfg.to_str().unwrap(), "node", "sssd-conf"], None, "");
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert!(!text(&o).contains("s3cret-node-pw"), "the password must not be printed: {}", text(&o));
    assert!(stdout(&o).contains("ldap_uri = ldaps://ldap.example.org\n"), "{}", stdout(&o));
    let o =
        dirbroker(&["--config", cfg.to_str().unwrap(), "node", "sssd-conf", "--out", out.to_str().unwrap()], None, "");
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert_eq!(mode(&out), 0o600);
    assert!(std::fs::read_to_string(&out).unwrap().contains("ldap_default_authtok = s3cret-node-pw\n"));

    let help = dirbroker(&["node", "sssd-conf", "--help"], None, "");
    assert_eq!(code(&help), 0);
    assert!(
        stdout(&help).contains("Examples:") && stdout(&help).contains("--out /etc/sssd/sssd.conf"),
        "{}",
        stdout(&help)
    );
}
