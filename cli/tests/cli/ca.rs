//! The data-center CA with `openssl verify` as the judge: issued chains are
//! accepted, revoked ones are rejected through the CRL published in LDAP.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use crate::support::*;

#[test]
fn issued_certificates_verify_and_revoked_ones_do_not() {
    let (tmp, cfg, _down) = cli_bed();
    let bed = tmp.path().join("bed");
    let run = |args: &[&str]| dirbroker(args, Some(&cfg), "");

    // No CA yet: a clear configuration error, nothing registered.
    let o = run(&["dc", "add", "DC-X", "--endpoint", "dcx:7443", "--out", tmp.path().join("dcx").to_str().unwrap()]);
    assert_eq!(code(&o), 4, "{}", text(&o));
    assert!(text(&o).contains("ca init"), "{}", text(&o));

    assert_eq!(code(&run(&["ca", "init"])), 0);
    assert_eq!(std::fs::metadata(bed.join("ca.key")).unwrap().permissions().mode() & 0o777, 0o600);
    let again = run(&["ca", "init"]);
    assert_eq!(code(&again), 1, "a second init must not replace the CA");

    let (a, b) = (tmp.path().join("dca"), tmp.path().join("dcb"));
    assert_eq!(code(&run(&["dc", "add", "DC-A", "--endpoint", "127.0.0.1:7443", "--out", a.to_str().unwrap()])), 0);
    assert_eq!(
        code(&run(&["dc", "add", "DC-B", "--endpoint", "dcb.example.org:7443", "--out", b.to_str().unwrap()])),
        0
    );
    for d in [&a, &b] {
        assert_eq!(std::fs::metadata(d).unwrap().permissions().mode() & 0o777, 0o700);
        assert_eq!(std::fs::metadata(d.join("key.pem")).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let ca = tmp.path().join("ca.pem");
    std::fs::write(&ca, stdout(&run(&["ca", "cert"]))).unwrap();
    let crl = tmp.path().join("crl.pem");
    std::fs::write(&crl, stdout(&run(&["ca", "crl"]))).unwrap();
    let verify_crl = |cert: &std::path::Path| {
        openssl_verify(&[
            "-crl_check",
            "-CAfile",
            ca.to_str().unwrap(),
            "-CRLfile",
            crl.to_str().unwrap(),
            cert.to_str().unwrap(),
        ])
    };
    for d in [&a, &b] {
        let cert = d.join("cert.pem");
        let (ok, out) = openssl_verify(&["-CAfile", ca.to_str().unwrap(), cert.to_str().unwrap()]);
        assert!(ok, "{out}");
        let (ok, out) = verify_crl(&cert);
        assert!(ok, "{out}");
        // The key in the bundle belongs to the certificate.
        let pubkey = |args: &[&str]| Command::new("openssl").args(args).output().unwrap().stdout;
        assert_eq!(
            pubkey(&["x509", "-noout", "-pubkey", "-in", cert.to_str().unwrap()]),
            pubkey(&["pkey", "-pubout", "-in", d.join("key.pem").to_str().unwrap()])
        );
    }
    // The DC's identity is in the certificate.
    let subject =
        Command::new("openssl").args(["x509", "-noout", "-subject", "-in"]).arg(a.join("cert.pem")).output().unwrap();
    assert!(stdout(&subject).contains("CN = DC-A"), "{}", stdout(&subject));

    assert_eq!(code(&run(&["dc", "revoke", "DC-A"])), 0);
    std::fs::write(&crl, stdout(&run(&["ca", "crl"]))).unwrap();
    let (ok, out) = verify_crl(&a.join("cert.pem"));
    assert!(!ok && out.contains("revoked"), "{out}");
    let (ok, out) = verify_crl(&b.join("cert.pem"));
    assert!(ok, "{out}");
    // Revoking again keeps one entry; the other DC stays valid.
    assert_eq!(code(&run(&["dc", "revoke", "DC-A"])), 0);
    std::fs::write(&crl, stdout(&run(&["ca", "crl"]))).unwrap();
    assert!(verify_crl(&b.join("cert.pem")).0);
    assert!(!verify_crl(&a.join("cert.pem")).0);
    // A refresh keeps the revocations and moves the CRL number on.
    assert_eq!(code(&run(&["ca", "refresh-crl"])), 0);
    std::fs::write(&crl, stdout(&run(&["ca", "crl"]))).unwrap();
    assert!(verify_crl(&b.join("cert.pem")).0);
    assert!(!verify_crl(&a.join("cert.pem")).0);
    let number = Command::new("openssl").args(["crl", "-noout", "-crlnumber", "-in"]).arg(&crl).output().unwrap();
    assert!(
        stdout(&number).contains("crlNumber=0x04") || stdout(&number).contains("crlNumber=04"),
        "{}",
        stdout(&number)
    );
    let list: serde_json::Value = serde_json::from_slice(&run(&["dc", "list", "--output", "json"]).stdout).unwrap();
    assert_eq!(list[0]["disabled"], true);
    assert_eq!(list[1]["disabled"], false);

    // A certificate from another CA is not accepted by this one.
    let other = tmp.path().join("other.pem");
    std::fs::write(&other, include_str!("../../../tests/e2e/fixtures/other-ca.pem")).unwrap();
    let (ok, _) = openssl_verify(&["-CAfile", ca.to_str().unwrap(), other.to_str().unwrap()]);
    assert!(!ok);

    // Bad input: clear errors, nothing written.
    for (args, want) in [
        (vec!["dc", "add", "DC-C", "--endpoint", "no-port"], "host:port"),
        (vec!["dc", "add", "DC-A", "--endpoint", "x:1", "--out", a.to_str().unwrap()], "exists"),
        (vec!["dc", "add", " DC-D", "--endpoint", "x:1"], "white space"),
        (vec!["dc", "revoke", "DC-NONE"], "no data center"),
    ] {
        let o = run(&args);
        assert_ne!(code(&o), 0, "{args:?}");
        assert!(text(&o).contains(want), "{args:?}: {}", text(&o));
    }
    let list: serde_json::Value = serde_json::from_slice(&run(&["dc", "list", "--output", "json"]).stdout).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 2);
}

/// Physical-server TOTP secrets and pre-shared keys: handed out once in a
/// 0600 bundle, stored only sealed, and the sealed value opens to exactly
/// what the bundle holds.
#[tokio::test]
async fn machine_credentials_are_bundled_once_and_stored_sealed() {
    use dirbroker::model::{PhysicalServer, PreSharedKey};
    use dirbroker::seal::{Keyring, context};

    let (tmp, cfg, _down) = cli_bed();
    let bed = tmp.path().join("bed");
    let run = |args: &[&str]| dirbroker(args, Some(&cfg), "");
    assert_eq!(code(&run(&["ca", "init"])), 0);
    let dcdir = tmp.path().join("dc1");
    assert_eq!(code(&run(&["dc", "add", "DC-1", "--endpoint", "dc1:7443", "--out", dcdir.to_str().unwrap()])), 0);
    assert_eq!(code(&run(&["user", "add", "admin1", "--name", "Admin One", "--level", "4"])), 0);

    let bundle = tmp.path().join("ps1.bundle");
    let o = run(&["ps", "add", "PS-1", "--dc", "DC-9", "--out", bundle.to_str().unwrap()]);
    assert_eq!(code(&o), 1, "{}", text(&o));
    assert!(!bundle.exists(), "no bundle for a refused server");
    let o =
        run(&["ps", "add", "PS-1", "--dc", "DC-1", "--endpoint", "10.2.0.1:7444", "--out", bundle.to_str().unwrap()]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert_eq!(std::fs::metadata(&bundle).unwrap().permissions().mode() & 0o777, 0o600);
    let o = run(&["ps", "add", "PS-2", "--dc", "DC-1", "--out", bundle.to_str().unwrap()]);
    assert_eq!(code(&o), 2, "an existing bundle is never overwritten: {}", text(&o));
    let listed: serde_json::Value = serde_json::from_slice(&run(&["ps", "list", "--output", "json"]).stdout).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1, "PS-2 must not exist");
    assert_eq!(listed[0]["datacenter"], "DC-1", "ps list names the data center by id, as dc list does: {listed}");
    let o = run(&["ps", "list"]);
    let line = stdout(&o);
    assert_eq!(line.split_whitespace().collect::<Vec<_>>(), ["PS-1", "DC-1", "10.2.0.1:7444"], "{line}");

    let field = |text: &str, key: &str| -> String {
        text.lines().find_map(|l| l.strip_prefix(&format!("{key} = "))).unwrap().trim_matches('"').to_string()
    };
    let b1 = std::fs::read_to_string(&bundle).unwrap();
    let secret_b32 = field(&b1, "secret_base32");
    assert_eq!(field(&b1, "datacenter"), "DC-1");

    // The sealed value in LDAP opens (with the broker's keyring) to the bundle's secret.
    let config = dirbroker::config::Config::load(&cfg).unwrap();
    let ring = Keyring::load(&config.keyring_path()).unwrap();
    let dir = dirbroker::directory::Directory::connect(config.directory_config().unwrap()).await.unwrap();
    let ps = dir.load::<PhysicalServer>("PS-1").await.unwrap();
    let opened = ring.open(&context::server_totp(&ps), ps.totp_secret.as_ref().unwrap()).unwrap();
    assert_eq!(totp_rs::Secret::new(opened.to_vec().into_boxed_slice()).to_base32(), secret_b32);
    // … and oathtool makes the same code from the bundle as from the opened secret.
    let hex: String = opened.iter().map(|b| format!("{b:02x}")).collect();
    let by_hex = Command::new("oathtool").args(["--totp", "-N", "@1800000000", &hex]).output().unwrap();
    let by_b32 = Command::new("oathtool").args(["--totp", "-b", "-N", "@1800000000", &secret_b32]).output().unwrap();
    assert_eq!(by_hex.stdout, by_b32.stdout);

    // Rotation: a new secret, and the old one no longer in the directory.
    let bundle2 = tmp.path().join("ps1-new.bundle");
    assert_eq!(code(&run(&["ps", "rotate", "PS-1", "--out", bundle2.to_str().unwrap()])), 0);
    let new_b32 = field(&std::fs::read_to_string(&bundle2).unwrap(), "secret_base32");
    assert_ne!(new_b32, secret_b32);
    let ps = dir.load::<PhysicalServer>("PS-1").await.unwrap();
    let opened = ring.open(&context::server_totp(&ps), ps.totp_secret.as_ref().unwrap()).unwrap();
    assert_eq!(totp_rs::Secret::new(opened.to_vec().into_boxed_slice()).to_base32(), new_b32);

    // K1 between the admin console and the data center.
    let k1 = tmp.path().join("k1.bundle");
    let o = run(&["psk", "add", "k1", "--admin", "nobody", "--dc", "DC-1", "--out", k1.to_str().unwrap()]);
    assert_eq!(code(&o), 1);
    assert!(!k1.exists());
    assert_eq!(
        code(&run(&["psk", "add", "k1", "--admin", "admin1", "--dc", "DC-1", "--out", k1.to_str().unwrap()])),
        0
    );
    assert_eq!(std::fs::metadata(&k1).unwrap().permissions().mode() & 0o777, 0o600);
    let kb = std::fs::read_to_string(&k1).unwrap();
    let psk = dir.load::<PreSharedKey>("k1").await.unwrap();
    let opened = ring.open(&context::psk(&psk), &psk.secret).unwrap();
    use base64::Engine;
    assert_eq!(base64::engine::general_purpose::STANDARD.encode(opened.as_slice()), field(&kb, "key_base64"));
    assert_eq!(psk.parties.len(), 2);
    let k1b = tmp.path().join("k1-new.bundle");
    assert_eq!(code(&run(&["psk", "rotate", "k1", "--out", k1b.to_str().unwrap()])), 0);
    let kb2 = std::fs::read_to_string(&k1b).unwrap();
    assert_ne!(field(&kb2, "key_base64"), field(&kb, "key_base64"));
    assert_eq!((field(&kb2, "admin").as_str(), field(&kb2, "datacenter").as_str()), ("admin1", "DC-1"));

    // The directory admin's dump shows none of these secrets.
    let uri = config.directory.uris[0].clone();
    let dump = Command::new("ldapsearch")
        .args(["-LLL", "-x", "-o", "ldif-wrap=no", "-H", &uri, "-D", "cn=admin,dc=example,dc=org", "-y"])
        .arg(bed.join("admin.pw"))
        .args(["-b", "dc=example,dc=org"])
        .output()
        .unwrap();
    let dump = String::from_utf8_lossy(&dump.stdout).to_string();
    for s in [new_b32.as_str(), secret_b32.as_str(), &field(&kb2, "key_base64"), &field(&kb, "key_base64")] {
        assert!(!dump.contains(s), "secret {s} visible in the dump");
    }
    assert_eq!(code(&run(&["psk", "remove", "k1"])), 0);
    assert_eq!(code(&run(&["ps", "remove", "PS-1"])), 0);
    assert_eq!(code(&run(&["ps", "remove", "PS-1"])), 1);
}
