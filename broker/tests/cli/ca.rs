//! The data-center CA with `openssl verify` as the judge: issued chains are
//! accepted, revoked ones are rejected through the CRL published in LDAP.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use crate::support::*;

fn openssl_verify(args: &[&str]) -> (bool, String) {
    let o = Command::new("openssl").arg("verify").args(args).output().unwrap();
    (o.status.success(), text(&o))
}

#[test]
fn issued_certificates_verify_and_revoked_ones_do_not() {
    let tmp = short_tmp();
    let bed = tmp.path().join("bed");
    let up = dirbroker(&["testbed", "up", "--dir", bed.to_str().unwrap()], None, "");
    let _down = Down(bed.clone());
    assert_eq!(code(&up), 0, "{}", text(&up));
    let cfg = bed.join("dirbroker.toml");
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
    for d in [&a, &b] {
        let cert = d.join("cert.pem");
        let (ok, out) = openssl_verify(&["-CAfile", ca.to_str().unwrap(), cert.to_str().unwrap()]);
        assert!(ok, "{out}");
        let (ok, out) = openssl_verify(&[
            "-crl_check",
            "-CAfile",
            ca.to_str().unwrap(),
            "-CRLfile",
            crl.to_str().unwrap(),
            cert.to_str().unwrap(),
        ]);
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
    let (ok, out) = verify_crl(&a.join("cert.pem"));
    assert!(!ok && out.contains("revoked"), "{out}");
    let (ok, out) = verify_crl(&b.join("cert.pem"));
    assert!(ok, "{out}");
    // Revoking again keeps one entry; the other DC stays valid.
    assert_eq!(code(&run(&["dc", "revoke", "DC-A"])), 0);
    std::fs::write(&crl, stdout(&run(&["ca", "crl"]))).unwrap();
    assert!(verify_crl(&b.join("cert.pem")).0);
    assert!(!verify_crl(&a.join("cert.pem")).0);
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
