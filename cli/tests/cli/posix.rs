//! POSIX accounts and groups through the CLI (issue #14): `user add` makes
//! POSIX accounts from the directory's id counter, racing processes get
//! distinct ids, refusals write nothing, `user modify` and `group …`.

use std::collections::HashSet;
use std::path::Path;

use serde_json::Value;

use crate::support::*;

fn json(o: &std::process::Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(o)))
}

fn ok(args: &[&str], cfg: &Path) -> Value {
    let mut a = args.to_vec();
    a.extend(["--output", "json"]);
    let o = dirbroker(&a, Some(cfg), "");
    assert_eq!(code(&o), 0, "{args:?}: {}", text(&o));
    json(&o)
}

/// A copy of the bed's configuration with a `[posix]` section.
fn with_posix(cfg: &Path, section: &str) -> std::path::PathBuf {
    let out = cfg.with_file_name(format!("posix-{}.toml", section.len()));
    std::fs::write(&out, format!("{}\n[posix]\n{section}\n", std::fs::read_to_string(cfg).unwrap())).unwrap();
    out
}

#[test]
fn racing_user_add_processes_get_distinct_ids() {
    let (_tmp, cfg, _down) = cli_bed();
    let threads: Vec<_> = ["a", "b"]
        .into_iter()
        .map(|p| {
            let cfg = cfg.clone();
            std::thread::spawn(move || {
                for i in 0..8 {
                    let uid = format!("{p}{i}");
                    let o = dirbroker(&["user", "add", &uid, "--name", "Racer"], Some(&cfg), "");
                    assert_eq!(code(&o), 0, "{uid}: {}", text(&o));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let users = ok(&["user", "list"], &cfg);
    let users = users.as_array().unwrap();
    assert_eq!(users.len(), 16);
    let uids: HashSet<u64> = users.iter().map(|u| u["posix"]["uid_number"].as_u64().unwrap()).collect();
    let gids: HashSet<u64> = users.iter().map(|u| u["posix"]["gid_number"].as_u64().unwrap()).collect();
    assert_eq!(uids.len(), 16, "{users:?}");
    assert_eq!(gids, uids, "user-private groups have the user's number");
    assert!(uids.iter().all(|u| (10000..10016).contains(u)), "{uids:?}");
    assert_eq!(ok(&["group", "list"], &cfg).as_array().unwrap().len(), 16);
}

#[test]
fn user_add_is_posix_by_default_and_refusals_write_nothing() {
    let (_tmp, cfg, _down) = cli_bed();
    let alice = ok(&["user", "add", "alice", "--name", "Alice Liddell"], &cfg);
    assert_eq!(alice["posix"]["uid_number"], 10000);
    assert_eq!(alice["posix"]["gid_number"], 10000);
    assert_eq!(alice["posix"]["home_directory"], "/home/alice");
    assert_eq!(alice["posix"]["login_shell"], "/bin/bash");
    assert_eq!(alice["group_dn"], "cn=alice,ou=groups,dc=example,dc=org");
    let o = dirbroker(&["user", "show", "alice"], Some(&cfg), "");
    assert!(text(&o).contains("posix:    uid 10000 gid 10000 home /home/alice"), "{}", text(&o));

    // Overrides.
    let dave = ok(
        &[
            "user",
            "add",
            "dave",
            "--name",
            "Dave",
            "--uid-number",
            "20001",
            "--gid-number",
            "100",
            "--home",
            "/srv/dave",
            "--shell",
            "/bin/zsh",
        ],
        &cfg,
    );
    assert_eq!(dave["posix"]["uid_number"], 20001);
    assert_eq!(dave["posix"]["gid_number"], 100);
    assert_eq!(dave["posix"]["home_directory"], "/srv/dave");
    assert_eq!(dave["posix"]["login_shell"], "/bin/zsh");
    assert_eq!(dave["group_dn"], Value::Null);
    let robot = ok(&["user", "add", "robot", "--name", "Robot", "--no-posix"], &cfg);
    assert_eq!(robot["posix"], Value::Null);
    // A non-POSIX identity may keep a uid no login could have.
    ok(&["user", "add", "svc,1", "--name", "Odd", "--no-posix"], &cfg);

    // A uidNumber in use: exit 1, a clear message, neither user nor group written.
    let o = dirbroker(&["user", "add", "eve", "--name", "Eve", "--uid-number", "10000"], Some(&cfg), "");
    assert_eq!(code(&o), 1, "{}", text(&o));
    assert!(text(&o).contains("uidNumber 10000 is already used by uid=alice"), "{}", text(&o));
    assert_eq!(code(&dirbroker(&["user", "show", "eve"], Some(&cfg), "")), 1);
    assert_eq!(code(&dirbroker(&["group", "show", "eve"], Some(&cfg), "")), 1);
    // Reserved ids, bad paths, a uid that is no login name, contradicting flags: usage errors.
    for args in [
        vec!["--uid-number", "0"],
        vec!["--uid-number", "4294967295"],
        vec!["--gid-number", "65534"],
        vec!["--home", "relative/eve"],
        vec!["--shell", "/bin/sh:x"],
        vec!["--no-posix", "--uid-number", "5"],
    ] {
        let mut a = vec!["user", "add", "eve", "--name", "Eve"];
        a.extend(args.iter().copied());
        let o = dirbroker(&a, Some(&cfg), "");
        assert_eq!(code(&o), 2, "{args:?}: {}", text(&o));
    }
    let o = dirbroker(&["user", "add", "a=b", "--name", "Eq"], Some(&cfg), "");
    assert_eq!(code(&o), 2, "{}", text(&o));
    assert!(text(&o).contains("--no-posix"), "{}", text(&o));
    assert_eq!(code(&dirbroker(&["user", "show", "eve"], Some(&cfg), "")), 1);

    // A configured default group: no private group.
    let shared = with_posix(&cfg, "default_gid = 100\nhome_base = \"/u\"\ndefault_shell = \"/bin/sh\"");
    let carol = ok(&["user", "add", "carol", "--name", "Carol"], &shared);
    assert_eq!(carol["posix"]["gid_number"], 100);
    assert_eq!(carol["posix"]["home_directory"], "/u/carol");
    assert_eq!(carol["posix"]["login_shell"], "/bin/sh");
    assert_eq!(code(&dirbroker(&["group", "show", "carol"], Some(&cfg), "")), 1);

    // A used-up range: a clear error, and no user.
    let tight = with_posix(&cfg, "uid_min = 50000\nuid_max = 50001");
    ok(&["user", "add", "f1", "--name", "F"], &tight);
    ok(&["user", "add", "f2", "--name", "F"], &tight);
    let o = dirbroker(&["user", "add", "f3", "--name", "F"], Some(&tight), "");
    assert_eq!(code(&o), 1, "{}", text(&o));
    assert!(text(&o).contains("no free POSIX id left"), "{}", text(&o));
    assert_eq!(code(&dirbroker(&["user", "show", "f3"], Some(&cfg), "")), 1);

    // Deleting a user removes its private group.
    let o = ok(&["user", "delete", "alice"], &cfg);
    assert_eq!(o["deleted_group"], "alice");
    assert_eq!(code(&dirbroker(&["group", "show", "alice"], Some(&cfg), "")), 1);
}

#[test]
fn an_ldapadd_user_takes_keys_allowed_from_and_a_unix_login() {
    let (tmp, cfg, _down) = cli_bed();
    let bed = tmp.path().join("bed");
    let ldapi = format!("ldapi://{}", bed.join("ldapi").to_str().unwrap().replace('/', "%2F"));
    let ldif =
        "dn: uid=legacy,ou=people,dc=example,dc=org\nobjectClass: inetOrgPerson\nuid: legacy\ncn: Legacy\nsn: Legacy\n";
    let o = dirbroker_testbed::harness::run_with_stdin(
        std::process::Command::new("ldapadd")
            .args(["-x", "-H", &ldapi, "-D", "cn=admin,dc=example,dc=org", "-y"])
            .arg(bed.join("admin.pw")),
        ldif,
    );
    assert!(o.status.success(), "{}", text(&o));
    // `user key add` adds the classes the entry lacks (it used to fail with a constraint violation).
    let (_, key) = keypair(tmp.path(), "k", "");
    let o = dirbroker(&["user", "key", "add", "legacy", "-"], Some(&cfg), &format!("{key}\n"));
    assert_eq!(code(&o), 0, "{}", text(&o));
    let o = dirbroker(&["user", "allow", "legacy", "--from", "10.0.0.0/8"], Some(&cfg), "");
    assert_eq!(code(&o), 0, "{}", text(&o));
    let keys = dirbroker(&["ssh", "authorized-keys", "legacy"], Some(&bed.join("node-reader.toml")), "");
    assert!(stdout(&keys).contains(key.split_whitespace().nth(1).unwrap()), "{}", text(&keys));

    // POSIX attributes need --posix first.
    let o = dirbroker(&["user", "modify", "legacy", "--shell", "/bin/zsh"], Some(&cfg), "");
    assert_eq!(code(&o), 2, "{}", text(&o));
    assert!(text(&o).contains("--posix"), "{}", text(&o));
    let u = ok(&["user", "modify", "legacy", "--posix", "--mail", "legacy@example.org"], &cfg);
    assert_eq!(u["posix"]["uid_number"], 10000);
    assert_eq!(u["posix"]["home_directory"], "/home/legacy");
    assert_eq!(u["mail"], "legacy@example.org");
    assert_eq!(ok(&["group", "show", "legacy"], &cfg)["gid_number"], 10000);
    let u = ok(&["user", "modify", "legacy", "--no-mail", "--no-shell", "--name", "Legacy Person"], &cfg);
    assert_eq!(u["mail"], Value::Null);
    assert_eq!(u["posix"]["login_shell"], Value::Null);
    assert_eq!(u["name"], "Legacy Person");
    let o = dirbroker(&["user", "modify", "legacy"], Some(&cfg), "");
    assert_eq!(code(&o), 2, "{}", text(&o));
    let o = dirbroker(&["user", "modify", "legacy", "--posix"], Some(&cfg), "");
    assert_eq!(code(&o), 2, "{}", text(&o));
    assert!(text(&o).contains("POSIX account already"), "{}", text(&o));

    // Validity bounds: an expired account gives no keys; bad or impossible
    // bounds are usage errors that write nothing.
    let node = bed.join("node-reader.toml");
    let u = ok(&["user", "modify", "legacy", "--not-after", "2020-01-01"], &cfg);
    assert_eq!(u["not_after"], 1_577_836_800);
    assert!(u["usable"].as_str().unwrap().starts_with("expired at 2020-01-01"), "{u}");
    let keys = dirbroker(&["ssh", "authorized-keys", "legacy"], Some(&node), "");
    assert_eq!(stdout(&keys), "", "{}", text(&keys));
    for bad in [
        &["--not-after", "next tuesday"][..],
        &["--not-before", "2030-01-01T00:00:00Z"],
        &["--not-after", "2027-01-01", "--no-not-after"],
    ] {
        let o = dirbroker(&[&["user", "modify", "legacy"][..], bad].concat(), Some(&cfg), "");
        assert_eq!(code(&o), 2, "{bad:?}: {}", text(&o));
    }
    let u = ok(&["user", "show", "legacy"], &cfg);
    assert_eq!((u["not_before"].clone(), u["not_after"].clone()), (Value::Null, Value::from(1_577_836_800)));
    let u = ok(&["user", "modify", "legacy", "--no-not-after", "--not-before", "2020-01-01T12:00:00+02:00"], &cfg);
    assert_eq!((u["not_before"].clone(), u["not_after"].clone()), (Value::from(1_577_872_800), Value::Null));
    assert_eq!(u["usable"], "yes");
    let keys = dirbroker(&["ssh", "authorized-keys", "legacy"], Some(&node), "");
    assert!(stdout(&keys).contains(key.split_whitespace().nth(1).unwrap()), "{}", text(&keys));
}

#[test]
fn group_commands() {
    let (_tmp, cfg, _down) = cli_bed();
    ok(&["user", "add", "alice", "--name", "Alice"], &cfg);
    ok(&["user", "add", "bob", "--name", "Bob"], &cfg);
    let g = ok(&["group", "add", "devs", "--description", "developers"], &cfg);
    assert_eq!(g["gid_number"], 10002);
    assert_eq!(g["dn"], "cn=devs,ou=groups,dc=example,dc=org");
    let o = dirbroker(&["group", "add", "ops", "--gid-number", "10002", "--output", "json"], Some(&cfg), "");
    assert_eq!(code(&o), 1, "{}", text(&o));
    assert!(json(&o).to_string().contains("gidNumber 10002"), "{}", text(&o));

    let g = ok(&["group", "add-member", "devs", "alice", "bob"], &cfg);
    assert_eq!(g["members"], serde_json::json!(["alice", "bob"]));
    let o = dirbroker(&["group", "add-member", "devs", "zed"], Some(&cfg), "");
    assert_eq!(code(&o), 1, "{}", text(&o));
    assert!(text(&o).contains("no user with uid \"zed\""), "{}", text(&o));
    let shown = ok(&["user", "show", "bob"], &cfg);
    assert_eq!(shown["groups"], serde_json::json!(["devs"]));
    let g = ok(&["group", "remove-member", "devs", "bob"], &cfg);
    assert_eq!(g["members"], serde_json::json!(["alice"]));
    let o = dirbroker(&["group", "remove-member", "devs", "bob"], Some(&cfg), "");
    assert_eq!(code(&o), 1, "{}", text(&o));
    let shown = ok(&["group", "show", "alice"], &cfg);
    assert_eq!(shown["primary_of"], serde_json::json!(["alice"]));
    let o = dirbroker(&["group", "show", "devs"], Some(&cfg), "");
    assert!(text(&o).contains("members:    alice"), "{}", text(&o));
    let o = dirbroker(&["group", "list"], Some(&cfg), "");
    assert!(text(&o).contains("devs") && text(&o).contains("10002"), "{}", text(&o));

    // Hostile names: usage errors, nothing made.
    for bad in ["a,b", "cn=x", "*", "x)(cn=*", "-x"] {
        let o = dirbroker(&["group", "add", "--", bad], Some(&cfg), "");
        assert_eq!(code(&o), 2, "{bad:?}: {}", text(&o));
        assert!(text(&o).contains("group name"), "{}", text(&o));
    }
    for bad in ["*", "alice)(uid=*"] {
        assert_eq!(code(&dirbroker(&["group", "add-member", "devs", bad], Some(&cfg), "")), 1);
    }
    assert_eq!(ok(&["group", "list"], &cfg).as_array().unwrap().len(), 3);

    // A private group in use as a primary group: refused unless --force.
    let o = dirbroker(&["group", "delete", "alice"], Some(&cfg), "");
    assert_eq!(code(&o), 1, "{}", text(&o));
    assert!(text(&o).contains("primary group of alice"), "{}", text(&o));
    ok(&["group", "delete", "alice", "--force"], &cfg);
    ok(&["group", "delete", "devs"], &cfg);
    assert_eq!(ok(&["group", "list"], &cfg).as_array().unwrap().len(), 1);
}

#[test]
fn group_and_user_modify_help_have_examples() {
    for sub in [
        vec!["group", "add"],
        vec!["group", "show"],
        vec!["group", "list"],
        vec!["group", "delete"],
        vec!["group", "add-member"],
        vec!["group", "remove-member"],
        vec!["user", "modify"],
    ] {
        let mut args = sub.clone();
        args.push("--help");
        let o = dirbroker(&args, None, "");
        assert_eq!(code(&o), 0, "{sub:?}");
        assert!(text(&o).contains("Example"), "{sub:?} --help has no example:\n{}", text(&o));
    }
}
