//! Migrating an old system in three commands: generate LDIF from passwd,
//! group and a keys directory, check it, import it — then the keys serve
//! `ssh authorized-keys` and the host keys serve `ssh known-hosts`.

use std::process::Command;

use crate::support::*;

#[test]
fn passwd_group_and_keys_migrate_in_three_commands() {
    let tmp = short_tmp();
    let bed = tmp.path().join("bed");
    let _down = testbed_up(&bed);
    let cfg = bed.join("dirbroker.toml");

    let old = tmp.path().join("old");
    let keys = old.join("authorized_keys");
    std::fs::create_dir_all(&keys).unwrap();
    std::fs::write(
        old.join("passwd"),
        "root:x:0:0:root:/root:/bin/bash\nalice:x:1001:1001:Alice Liddell,,,:/home/alice:/bin/bash\n\
         bob:x:1002:1002:Bob:/home/bob:/bin/sh\nbroken\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
    )
    .unwrap();
    std::fs::write(old.join("group"), "root:x:0:\nstaff:x:1001:alice,bob\n").unwrap();
    let (_, alice_key) = keypair(tmp.path(), "alice-key", "");
    std::fs::write(keys.join("alice"), format!("# alice's keys\n{alice_key}\nnot a key\n")).unwrap();
    let ldif = tmp.path().join("people.ldif");

    // 1. generate
    let o = dirbroker(
        &[
            "ldif",
            "from-passwd",
            old.join("passwd").to_str().unwrap(),
            "--group",
            old.join("group").to_str().unwrap(),
            "--keys-dir",
            keys.to_str().unwrap(),
            "--out",
            ldif.to_str().unwrap(),
        ],
        Some(&cfg),
        "",
    );
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert!(text(&o).contains("passwd:4: skipped"), "the broken line is named: {}", text(&o));
    assert!(text(&o).contains("not an OpenSSH public key"), "the bad key is named: {}", text(&o));
    // 2. check
    let o = dirbroker(&["ldif", "check", ldif.to_str().unwrap()], Some(&cfg), "");
    assert_eq!(code(&o), 0, "{}", text(&o));
    // 3. import
    let o = dirbroker(&["import", ldif.to_str().unwrap(), "--output", "json"], Some(&cfg), "");
    assert_eq!(code(&o), 0, "{}", text(&o));
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(summary["added"], 3, "alice, bob, group staff: {summary}");

    let node = bed.join("node-reader.toml");
    let keys_out = dirbroker(&["ssh", "authorized-keys", "alice"], Some(&node), "");
    assert_eq!(stdout(&keys_out).trim(), alice_key);
    let bob = dirbroker(&["user", "show", "bob", "--output", "json"], Some(&cfg), "");
    let bob: serde_json::Value = serde_json::from_slice(&bob.stdout).unwrap();
    assert_eq!(bob["posix"]["uid_number"], 1002);
    assert_eq!(code(&dirbroker(&["user", "show", "root"], Some(&cfg), "")), 1, "system accounts stay out");

    // Host keys as LDIF (SSHHKTLDAP), imported, then read back for known_hosts.
    let hostkeys = tmp.path().join("hostkeys");
    std::fs::create_dir(&hostkeys).unwrap();
    let ok = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(hostkeys.join("ssh_host_ed25519_key"))
        .status()
        .unwrap();
    assert!(ok.success());
    let hl = tmp.path().join("host.ldif");
    let o = dirbroker(
        &[
            "ldif",
            "from-host-keys",
            "node9",
            "--address",
            "10.9.0.9",
            "--dir",
            hostkeys.to_str().unwrap(),
            "--out",
            hl.to_str().unwrap(),
        ],
        Some(&cfg),
        "",
    );
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert_eq!(code(&dirbroker(&["import", hl.to_str().unwrap()], Some(&cfg), "")), 0);
    let kh = dirbroker(&["ssh", "known-hosts", "10.9.0.9"], Some(&node), "");
    let public = std::fs::read_to_string(hostkeys.join("ssh_host_ed25519_key.pub")).unwrap();
    let blob = public.split_whitespace().nth(1).unwrap();
    assert_eq!(stdout(&kh).trim(), format!("10.9.0.9 ssh-ed25519 {blob}"));
    // An existing --out file is never overwritten.
    let o = dirbroker(
        &[
            "ldif",
            "from-host-keys",
            "node9",
            "--address",
            "10.9.0.9",
            "--dir",
            hostkeys.to_str().unwrap(),
            "--out",
            hl.to_str().unwrap(),
        ],
        Some(&cfg),
        "",
    );
    assert_eq!(code(&o), 2, "{}", text(&o));
}

/// Export leaves secrets out unless asked, and what it writes imports again.
#[test]
fn export_redacts_secrets_and_round_trips_through_import() {
    let tmp = short_tmp();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let _downs = [testbed_up(&a), testbed_up(&b)];
    let (ca, cb) = (a.join("dirbroker.toml"), b.join("dirbroker.toml"));
    let pw = secret_file(tmp.path(), "pw", "pw-1234567890", 0o600);
    assert_eq!(
        code(&dirbroker(
            &[
                "user",
                "add",
                "erin",
                "--name",
                "Erin",
                "--uid-number",
                "2001",
                "--gid-number",
                "100",
                "--password-file",
                pw.to_str().unwrap()
            ],
            Some(&ca),
            ""
        )),
        0
    );
    let (_, key) = keypair(tmp.path(), "erin-key", "");
    assert_eq!(code(&dirbroker(&["user", "key", "add", "erin", "-"], Some(&ca), &key)), 0);
    let seed = secret_file(tmp.path(), "seed", "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", 0o600);
    assert_eq!(
        code(&dirbroker(
            &["otp", "import", "erin", "--type", "totp", "--secret-file", seed.to_str().unwrap(), "--id", "erin-t"],
            Some(&ca),
            ""
        )),
        0
    );

    let plain = dirbroker(&["export"], Some(&ca), "");
    assert_eq!(code(&plain), 0, "{}", text(&plain));
    let out = stdout(&plain);
    assert!(out.contains("uid=erin,ou=people"), "{out}");
    assert!(!out.to_lowercase().contains("userpassword"), "password hash exported");
    assert!(!out.contains("dirbrokerOtpSecret"), "OTP secret exported");
    assert!(text(&plain).contains("left out"), "{}", text(&plain));
    let with = tmp.path().join("with-secrets.ldif");
    assert_eq!(code(&dirbroker(&["export", "--include-secrets", "--out", with.to_str().unwrap()], Some(&ca), "")), 0);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&with).unwrap().permissions().mode() & 0o777, 0o600);
    let w = std::fs::read_to_string(&with).unwrap();
    assert!(w.contains("dirbrokerOtpSecret::"), "sealed secret kept (base64)");
    assert!(!w.contains("GEZDGNBV"), "never in clear");

    // People only, into a fresh directory: the same users and keys come back.
    let people = tmp.path().join("people.ldif");
    let o = dirbroker(
        &[
            "export",
            "--base",
            "ou=people,dc=example,dc=org",
            "--filter",
            "(objectClass=posixAccount)",
            "--out",
            people.to_str().unwrap(),
        ],
        Some(&ca),
        "",
    );
    assert_eq!(code(&o), 0, "{}", text(&o));
    let o = dirbroker(&["import", people.to_str().unwrap()], Some(&cb), "");
    assert_eq!(code(&o), 0, "{}", text(&o));
    let keys = dirbroker(&["ssh", "authorized-keys", "erin"], Some(&b.join("node-reader.toml")), "");
    assert_eq!(stdout(&keys).trim(), key);

    let bad = dirbroker(&["export", "--filter", "(uid=erin"], Some(&ca), "");
    assert_eq!(code(&bad), 2, "{}", text(&bad));
    assert!(text(&bad).contains("RFC 4515"), "{}", text(&bad));
}

/// A provisioning file may carry OTP seeds in clear: they are sealed on the
/// way in, verify with oathtool's codes, and never sit in LDAP in clear.
#[test]
fn clear_secrets_in_a_provisioning_file_are_sealed_on_import() {
    let tmp = short_tmp();
    let bed = tmp.path().join("bed");
    let _down = testbed_up(&bed);
    let cfg = bed.join("dirbroker.toml");
    assert_eq!(code(&dirbroker(&["user", "add", "fay", "--name", "Fay"], Some(&cfg), "")), 0);
    use base64::Engine;
    let secret_b64 = base64::engine::general_purpose::STANDARD.encode(b"12345678901234567890");
    let ldif = tmp.path().join("tokens.ldif");
    std::fs::write(
        &ldif,
        format!(
            "dn: dirbrokerTokenId=fay-hotp,ou=otp,dc=example,dc=org\nobjectClass: dirbrokerOtpToken\n\
             dirbrokerTokenId: fay-hotp\ndirbrokerTokenOwner: uid=fay,ou=people,dc=example,dc=org\n\
             dirbrokerTokenType: hotp\ndirbrokerHotpCounter: 0\ndirbrokerOtpFailureCount: 0\n\
             dirbrokerOtpSecret:: {secret_b64}\n\n"
        ),
    )
    .unwrap();
    let o = dirbroker(&["import", ldif.to_str().unwrap()], Some(&cfg), "");
    assert_eq!(code(&o), 0, "{}", text(&o));
    let code0 =
        Command::new("oathtool").args(["-c", "0", "3132333435363738393031323334353637383930"]).output().unwrap();
    let v = dirbroker(&["otp", "verify", "fay"], Some(&cfg), &stdout(&code0));
    assert_eq!(code(&v), 0, "{}", text(&v));
    let dump = dirbroker(&["export", "--include-secrets"], Some(&cfg), "");
    let out = stdout(&dump);
    assert!(out.contains("dirbrokerOtpSecret::"), "{out}");
    assert!(!out.contains(&secret_b64), "the seed is in LDAP in clear");

    // Without a keyring, such a file is refused before anything is written.
    let nokeys = tmp.path().join("nokeys.toml");
    let text_cfg = std::fs::read_to_string(&cfg).unwrap().replace("master.keys", "missing.keys");
    std::fs::write(&nokeys, text_cfg).unwrap();
    let ldif2 = tmp.path().join("tokens2.ldif");
    std::fs::write(&ldif2, std::fs::read_to_string(&ldif).unwrap().replace("fay-hotp", "fay-hotp2")).unwrap();
    let o = dirbroker(&["import", ldif2.to_str().unwrap()], Some(&nokeys), "");
    assert_eq!(code(&o), 1, "{}", text(&o));
    assert!(text(&o).contains("keyring"), "{}", text(&o));
}
