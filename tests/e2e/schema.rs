//! The shipped schema files, loaded the way an operator would load them.

use std::process::Command;

use dirbroker::model::User;
use dirbroker_testbed::Identity;
use dirbroker_testbed::harness::{scratch_dir, start, start_with};

fn repo_file(rel: &str) -> String {
    format!("{}/../{rel}", env!("CARGO_MANIFEST_DIR"))
}

fn ok(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "status {}: {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// schema/*.ldif load into a stock Debian slapd over ldapi with ldapadd -Y EXTERNAL.
#[tokio::test]
async fn ldif_schema_loads_into_stock_slapd_via_ldapi() {
    let bed = start_with(|o| o.dirbroker_schema = false).await;
    let before =
        ok(&bed.ldap_tool_external("ldapsearch", &["-LLL", "-b", "cn=schema,cn=config", "-s", "one", "cn"], ""));
    assert!(!before.contains("dirbroker"), "{before}");
    for f in ["schema/openssh-lpk.ldif", "schema/dirbroker.ldif"] {
        ok(&bed.ldap_tool_external("ldapadd", &["-f", &repo_file(f)], ""));
    }
    // The ACL file is written for this exact suffix and database: it loads as is.
    for f in ["schema/acl.ldif", "schema/indexes.ldif"] {
        ok(&bed.ldap_tool_external("ldapmodify", &["-f", &repo_file(f)], ""));
    }
    let after = ok(&bed.ldap_tool_external(
        "ldapsearch",
        &["-LLL", "-o", "ldif-wrap=no", "-b", "cn=schema,cn=config", "(cn=*dirbroker)", "olcObjectClasses"],
        "",
    ));
    for class in ["dirbrokerUser", "dirbrokerOtpToken", "dirbrokerHost", "dirbrokerPreSharedKey"] {
        assert!(after.contains(&format!("NAME '{class}'")), "{class} missing in {after}");
    }
    let acl = ok(&bed.ldap_tool_external(
        "ldapsearch",
        &["-LLL", "-b", "olcDatabase={1}mdb,cn=config", "-s", "base", "olcAccess"],
        "",
    ));
    assert!(acl.contains("dirbrokerOtpSecret"), "{acl}");
    // Loading twice is refused by slapd, not silently duplicated.
    let again = bed.ldap_tool_external("ldapadd", &["-f", &repo_file("schema/dirbroker.ldif")], "");
    assert!(!again.status.success());
}

/// The slapd.conf form passes slaptest with the stock schemas.
#[test]
fn conf_schema_passes_slaptest() {
    let tmp = scratch_dir();
    let conf = tmp.path().join("slapd.conf");
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(
        &conf,
        format!(
            "include /etc/ldap/schema/core.schema\ninclude /etc/ldap/schema/cosine.schema\n\
             include /etc/ldap/schema/inetorgperson.schema\ninclude /etc/ldap/schema/nis.schema\n\
             include {}\ninclude {}\nmodulepath /usr/lib/ldap\nmoduleload back_mdb\n\
             database mdb\nsuffix \"dc=example,dc=org\"\ndirectory {}\n",
            repo_file("schema/openssh-lpk.schema"),
            repo_file("schema/dirbroker.schema"),
            data.display()
        ),
    )
    .unwrap();
    let out = Command::new("/usr/sbin/slaptest").arg("-u").arg("-f").arg(&conf).output().unwrap();
    ok(&out);
}

/// An entry written by a plain LDAP tool, with sshPublicKey given both as
/// text and base64 (`::`), is read by the directory layer.
#[tokio::test]
async fn entry_written_by_ldapadd_is_readable() {
    let bed = start().await;
    let key1 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl carol@a";
    let key2 = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7 carol@b";
    let b64 = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(key2)
    };
    let ldif = format!(
        "dn: uid=carol,ou=people,dc=example,dc=org\nobjectClass: inetOrgPerson\nobjectClass: ldapPublicKey\n\
         uid: carol\ncn: Carol Danvers\nsn: Danvers\nsshPublicKey: {key1}\nsshPublicKey:: {b64}\n"
    );
    ok(&bed.ldap_tool_admin("ldapadd", &[], &ldif));
    for who in [Identity::Broker, Identity::NodeReader] {
        let dir = bed.dir_as(who).await;
        let carol = dir.find_user("carol").await.unwrap().expect("carol");
        let mut want = vec![key1.to_string(), key2.to_string()];
        want.sort();
        assert_eq!(carol.ssh_public_keys, want, "as {who:?}");
        if who == Identity::Broker {
            assert_eq!(carol.cn, "Carol Danvers");
            assert_eq!(carol, dir.load::<User>("carol").await.unwrap());
        }
    }
}
