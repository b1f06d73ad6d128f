//! The examples of RFC 2849 §"Examples of LDAP Data Interchange Format".
//! Examples 5 and 6 reference `:< file://` photos; they run against a temp
//! directory given as the URL base. Example 4's wrapped comment lines are
//! written as folded comments (the RFC's page layout broke them).

use dirbroker_ldif::{
    Attr, ChangeKind, ChangeRecord, Control, ErrorKind, ModOp, ModSpec, ParseOptions, Record, parse_all,
};

type R = Result<(), Box<dyn std::error::Error>>;

fn parse(s: &str) -> Result<Vec<Record>, dirbroker_ldif::LdifError> {
    parse_all(s.as_bytes(), ParseOptions::default())
}

fn entry(r: &Record) -> &dirbroker_ldif::Entry {
    match r {
        Record::Content(e) => e,
        Record::Change(c) => panic!("expected an entry, got {c:?}"),
    }
}

fn values<'a>(r: &'a Record, name: &str) -> Vec<&'a [u8]> {
    entry(r)
        .attrs
        .iter()
        .find(|a| a.name == name)
        .map(|a| a.values.iter().map(Vec::as_slice).collect())
        .unwrap_or_default()
}

#[test]
fn example_1_two_entries() -> R {
    let recs = parse(
        "version: 1\n\
dn: cn=Barbara Jensen, ou=Product Development, dc=airius, dc=com\n\
objectclass: top\nobjectclass: person\nobjectclass: organizationalPerson\n\
cn: Barbara Jensen\ncn: Barbara J Jensen\ncn: Babs Jensen\nsn: Jensen\nuid: bjensen\n\
telephonenumber: +1 408 555 1212\ndescription: A big sailing fan.\n\n\
dn: cn=Bjorn Jensen, ou=Accounting, dc=airius, dc=com\n\
objectclass: top\nobjectclass: person\nobjectclass: organizationalPerson\n\
cn: Bjorn Jensen\nsn: Jensen\ntelephonenumber: +1 408 555 1212\n",
    )?;
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[0].dn(), "cn=Barbara Jensen, ou=Product Development, dc=airius, dc=com");
    assert_eq!(values(&recs[0], "cn"), [&b"Barbara Jensen"[..], b"Barbara J Jensen", b"Babs Jensen"]);
    assert_eq!(values(&recs[0], "description"), [&b"A big sailing fan."[..]]);
    assert_eq!(entry(&recs[0]).attrs.len(), 6);
    assert_eq!(recs[1].dn(), "cn=Bjorn Jensen, ou=Accounting, dc=airius, dc=com");
    Ok(())
}

#[test]
fn example_2_folded_value() -> R {
    let recs = parse(
        "version: 1\n\
dn:cn=Barbara Jensen, ou=Product Development, dc=airius, dc=com\n\
objectclass:top\nobjectclass:person\nobjectclass:organizationalPerson\n\
cn:Barbara Jensen\ncn:Barbara J Jensen\ncn:Babs Jensen\nsn:Jensen\nuid:bjensen\n\
telephonenumber:+1 408 555 1212\n\
description:Babs is a big sailing fan, and travels extensively in sea\n rch of perfect sailing conditions.\n\
title:Product Manager, Rod and Reel Division\n",
    )?;
    assert_eq!(
        values(&recs[0], "description"),
        [&b"Babs is a big sailing fan, and travels extensively in search of perfect sailing conditions."[..]]
    );
    assert_eq!(values(&recs[0], "title"), [&b"Product Manager, Rod and Reel Division"[..]]);
    Ok(())
}

#[test]
fn example_3_base64_value() -> R {
    let recs = parse(
        "version: 1\n\
dn: cn=Gern Jensen, ou=Product Testing, dc=airius, dc=com\n\
objectclass: top\nobjectclass: person\nobjectclass: organizationalPerson\n\
cn: Gern Jensen\ncn: Gern O Jensen\nsn: Jensen\nuid: gernj\ntelephonenumber: +1 408 555 1212\n\
description:: V2hhdCBhIGNhcmVmdWwgcmVhZGVyIHlvdSBhcmUhICBUaGlzIHZhbHVlIGlzIGJhc2UtNjQtZW5\n \
jb2RlZCBiZWNhdXNlIGl0IGhhcyBhIGNvbnRyb2wgY2hhcmFjdGVyIGluIGl0IChhIENSKS4NICBCeSB0aGUgd2F5\n \
LCB5b3Ugc2hvdWxkIHJlYWxseSBnZXQgb3V0IG1vcmUu\n",
    )?;
    assert_eq!(
        values(&recs[0], "description"),
        [&b"What a careful reader you are!  This value is base-64-encoded because it has a control character in it (a CR).\r  By the way, you should really get out more."[..]]
    );
    Ok(())
}

#[test]
fn example_4_utf8_and_language_tags() -> R {
    let recs = parse(
        "version: 1\n\
dn:: b3U95Za25qWt6YOoLG89QWlyaXVz\n# dn:: ou=<JapaneseOU>,o=Airius\n\
objectclass: top\nobjectclass: organizationalUnit\n\
ou:: 5Za25qWt6YOo\n# ou:: <JapaneseOU>\n\
ou;lang-ja:: 5Za25qWt6YOo\n# ou;lang-ja:: <JapaneseOU>\n\
ou;lang-ja;phonetic:: 44GI44GE44GO44KH44GG44G2\n# ou;lang-ja:: <JapaneseOU_in_phonetic_representation>\n\
ou;lang-en: Sales\ndescription: Japanese office\n\n\
dn:: dWlkPXJvZ2FzYXdhcmEsb3U95Za25qWt6YOoLG89QWlyaXVz\n# dn:: uid=<uid>,ou=<JapaneseOU>,o=Airius\n\
userpassword: {SHA}O3HSv1MusyL4kTjP+HKI5uxuNoM=\n\
objectclass: top\nobjectclass: person\nobjectclass: organizationalPerson\nobjectclass: inetOrgPerson\n\
uid: rogasawara\nmail: rogasawara@airius.co.jp\n\
givenname;lang-ja:: 44Ot44OJ44OL44O8\n# givenname;lang-ja:: <JapaneseGivenname>\n\
sn;lang-ja:: 5bCP56yg5Y6f\n# sn;lang-ja:: <JapaneseSn>\n\
cn;lang-ja:: 5bCP56yg5Y6fIOODreODieODi+ODvA==\n# cn;lang-ja:: <JapaneseCn>\n\
title;lang-ja:: 5Za25qWt6YOoIOmDqOmVtw==\n# title;lang-ja:: <JapaneseTitle>\n\
preferredlanguage: ja\n\
givenname:: 44Ot44OJ44OL44O8\n# givenname:: <JapaneseGivenname>\n\
sn:: 5bCP56yg5Y6f\n# sn:: <JapaneseSn>\n\
cn:: 5bCP56yg5Y6fIOODreODieODi+ODvA==\n# cn:: <JapaneseCn>\n\
title:: 5Za25qWt6YOoIOmDqOmVtw==\n# title:: <JapaneseTitle>\n\
givenname;lang-ja;phonetic:: 44KN44Gp44Gr44O8\n# givenname;lang-ja;phonetic::\n <JapaneseGivenname_in_phonetic_representation_kana>\n\
sn;lang-ja;phonetic:: 44GK44GM44GV44KP44KJ\n# sn;lang-ja;phonetic:: <JapaneseSn_in_phonetic_representation_kana>\n\
cn;lang-ja;phonetic:: 44GK44GM44GV44KP44KJIOOCjeOBqeOBq+ODvA==\n# cn;lang-ja;phonetic:: <JapaneseCn_in_phonetic_representation_kana>\n\
title;lang-ja;phonetic:: 44GI44GE44GO44KH44GG44G2IOOBtuOBoeOCh+OBhg==\n# title;lang-ja;phonetic::\n # <JapaneseTitle_in_phonetic_representation_kana>\n\
givenname;lang-en: Rodney\nsn;lang-en: Ogasawara\ncn;lang-en: Rodney Ogasawara\ntitle;lang-en: Sales, Director\n",
    )?;
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[0].dn(), "ou=営業部,o=Airius");
    assert_eq!(values(&recs[0], "ou;lang-ja"), ["営業部".as_bytes()]);
    assert_eq!(recs[1].dn(), "uid=rogasawara,ou=営業部,o=Airius");
    assert_eq!(values(&recs[1], "cn;lang-ja"), ["小笠原 ロドニー".as_bytes()]);
    assert_eq!(values(&recs[1], "title;lang-en"), [&b"Sales, Director"[..]]);
    Ok(())
}

#[test]
fn example_5_external_file() -> R {
    let dir = tempfile::tempdir()?;
    let photo = dir.path().join("hjensen.jpg");
    std::fs::write(&photo, b"\xff\xd8\xff\xe0 not really a jpeg")?;
    let text = format!(
        "version: 1\n\
dn: cn=Horatio Jensen, ou=Product Testing, dc=airius, dc=com\n\
objectclass: top\nobjectclass: person\nobjectclass: organizationalPerson\n\
cn: Horatio Jensen\ncn: Horatio N Jensen\nsn: Jensen\nuid: hjensen\n\
telephonenumber: +1 408 555 1212\njpegphoto:< file://{}\n",
        photo.display()
    );
    let recs = parse_all(text.as_bytes(), ParseOptions::default().with_url_base(dir.path()))?;
    assert_eq!(values(&recs[0], "jpegphoto"), [&b"\xff\xd8\xff\xe0 not really a jpeg"[..]]);

    // Without the option the same file is refused, at the URL line.
    let err = parse(&text).err().ok_or("URL accepted without url_base")?;
    assert!(matches!(err.kind, ErrorKind::UrlDisabled), "{err}");
    assert_eq!(err.line, 11);
    Ok(())
}

fn example_6(photo_url: &str) -> String {
    format!(
        "version: 1\n\
# Add a new entry\n\
dn: cn=Fiona Jensen, ou=Marketing, dc=airius, dc=com\n\
changetype: add\n\
objectclass: top\nobjectclass: person\nobjectclass: organizationalPerson\n\
cn: Fiona Jensen\nsn: Jensen\nuid: fiona\ntelephonenumber: +1 408 555 1212\n\
jpegphoto:< {photo_url}\n\n\
# Delete an existing entry\n\
dn: cn=Robert Jensen, ou=Marketing, dc=airius, dc=com\n\
changetype: delete\n\n\
# Modify an entry's relative distinguished name\n\
dn: cn=Paul Jensen, ou=Product Development, dc=airius, dc=com\n\
changetype: modrdn\nnewrdn: cn=Paula Jensen\ndeleteoldrdn: 1\n\n\
# Rename an entry and move all of its children to a new location in\n\
# the directory tree (only implemented by LDAPv3 servers).\n\
dn: ou=PD Accountants, ou=Product Development, dc=airius, dc=com\n\
changetype: modrdn\nnewrdn: ou=Product Development Accountants\ndeleteoldrdn: 0\n\
newsuperior: ou=Accounting, dc=airius, dc=com\n\n\
# Modify an entry: add an additional value to the postaladdress\n\
# attribute, completely delete the description attribute, replace\n\
# the telephonenumber attribute with two values, and delete a specific\n\
# value from the facsimiletelephonenumber attribute\n\
dn: cn=Paula Jensen, ou=Product Development, dc=airius, dc=com\n\
changetype: modify\n\
add: postaladdress\npostaladdress: 123 Anystreet $ Sunnyvale, CA $ 94086\n-\n\
delete: description\n-\n\
replace: telephonenumber\ntelephonenumber: +1 408 555 1234\ntelephonenumber: +1 408 555 5678\n-\n\
delete: facsimiletelephonenumber\nfacsimiletelephonenumber: +1 408 555 9876\n-\n\n\
# Modify an entry: replace the postaladdress attribute with an empty\n\
# set of values (which will cause the attribute to be removed), and\n\
# delete the entire description attribute. Note that the first will\n\
# always succeed, while the second will only succeed if at least\n\
# one value for the description attribute is present.\n\
dn: cn=Ingrid Jensen, ou=Product Support, dc=airius, dc=com\n\
changetype: modify\nreplace: postaladdress\n-\ndelete: description\n-\n"
    )
}

fn change(r: &Record) -> &ChangeRecord {
    match r {
        Record::Change(c) => c,
        Record::Content(e) => panic!("expected a change, got {e:?}"),
    }
}

#[test]
fn example_6_change_records_and_comments() -> R {
    let dir = tempfile::tempdir()?;
    let photo = dir.path().join("fiona.jpg");
    std::fs::write(&photo, b"JPEG")?;
    let text = example_6(&format!("file://{}", photo.display()));
    let recs = parse_all(text.as_bytes(), ParseOptions::default().with_url_base(dir.path()))?;
    assert_eq!(recs.len(), 6);
    let ChangeKind::Add(attrs) = &change(&recs[0]).kind else {
        panic!("{:?}", recs[0]);
    };
    assert_eq!(attrs.last(), Some(&Attr { name: "jpegphoto".into(), values: vec![b"JPEG".to_vec()] }));
    assert_eq!(change(&recs[1]).kind, ChangeKind::Delete);
    assert_eq!(
        change(&recs[2]).kind,
        ChangeKind::ModRdn { new_rdn: "cn=Paula Jensen".into(), delete_old_rdn: true, new_superior: None }
    );
    assert_eq!(
        change(&recs[3]).kind,
        ChangeKind::ModRdn {
            new_rdn: "ou=Product Development Accountants".into(),
            delete_old_rdn: false,
            new_superior: Some("ou=Accounting, dc=airius, dc=com".into()),
        }
    );
    let m = |op, attr: &str, values: &[&str]| ModSpec {
        op,
        attr: attr.into(),
        values: values.iter().map(|v| v.as_bytes().to_vec()).collect(),
    };
    assert_eq!(
        change(&recs[4]).kind,
        ChangeKind::Modify(vec![
            m(ModOp::Add, "postaladdress", &["123 Anystreet $ Sunnyvale, CA $ 94086"]),
            m(ModOp::Delete, "description", &[]),
            m(ModOp::Replace, "telephonenumber", &["+1 408 555 1234", "+1 408 555 5678"]),
            m(ModOp::Delete, "facsimiletelephonenumber", &["+1 408 555 9876"]),
        ])
    );
    assert_eq!(
        change(&recs[5]).kind,
        ChangeKind::Modify(vec![m(ModOp::Replace, "postaladdress", &[]), m(ModOp::Delete, "description", &[])])
    );
    Ok(())
}

#[test]
fn example_6_url_escaping_the_base_is_refused() -> R {
    let base = tempfile::tempdir()?;
    let outside = tempfile::tempdir()?;
    let secret = outside.path().join("secret");
    std::fs::write(&secret, b"top secret")?;
    let opts = || ParseOptions::default().with_url_base(base.path());

    // `..` escape.
    let dotdot = format!(
        "file://{}/../{}/secret",
        base.path().display(),
        outside.path().strip_prefix(base.path().parent().ok_or("root")?)?.display()
    );
    // Symlink inside the base pointing out.
    let link = base.path().join("link");
    std::os::unix::fs::symlink(&secret, &link)?;
    let via_link = format!("file://{}", link.display());
    for url in [dotdot, via_link, format!("file://{}", secret.display())] {
        let err = parse_all(example_6(&url).as_bytes(), opts()).err().ok_or("escape accepted")?;
        assert!(matches!(err.kind, ErrorKind::UrlOutsideBase { .. }), "{url}: {err}");
        assert_eq!(err.line, 12, "{err}");
    }
    for url in ["http://example.com/x.jpg", "file://otherhost/etc/passwd", "file:relative"] {
        let err = parse_all(example_6(url).as_bytes(), opts()).err().ok_or("accepted")?;
        assert!(matches!(err.kind, ErrorKind::UnsupportedUrl(_)), "{url}: {err}");
    }
    Ok(())
}

#[test]
fn example_7_control() -> R {
    let recs = parse(
        "version: 1\n\
# Delete an entry. The operation will attach the LDAPv3\n\
# Tree Delete Control defined in [9]. The criticality\n\
# field is \"true\" and the controlValue field is\n\
# absent, as required by [9].\n\
dn: ou=Product Development, dc=airius, dc=com\n\
control: 1.2.840.113556.1.4.805 true\n\
changetype: delete\n",
    )?;
    assert_eq!(
        recs,
        [Record::Change(ChangeRecord {
            dn: "ou=Product Development, dc=airius, dc=com".into(),
            controls: vec![Control { oid: "1.2.840.113556.1.4.805".into(), critical: true, value: None }],
            kind: ChangeKind::Delete,
        })]
    );
    Ok(())
}
