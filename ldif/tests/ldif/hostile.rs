//! Hostile and malformed input: every case is an error with the right line,
//! never a panic; plus CRLF, folds inside characters and large records.

use dirbroker_ldif::{
    ChangeKind, ChangeRecord, ErrorKind, LdifError, LdifReader, ModOp, ParseOptions, Record, parse_all,
};

fn first_error(input: &[u8]) -> LdifError {
    match parse_all(input, ParseOptions::default()) {
        Err(e) => e,
        Ok(r) => panic!("accepted {:?}: {r:?}", String::from_utf8_lossy(input)),
    }
}

/// Input, expected line, expected column, expected kind.
type Case = (&'static [u8], usize, usize, fn(&ErrorKind) -> bool);

#[test]
fn hostile_inputs_report_line_and_column() {
    let cases: &[Case] = &[
        // truncated base64
        (b"dn: cn=a\ncn:: Zm9vYmF\n", 2, 13, |k| matches!(k, ErrorKind::InvalidBase64(_))),
        // invalid base64 byte, column points at it (on the continuation line)
        (b"dn: cn=a\ncn:: Zm9v\n YmF*\n", 3, 5, |k| matches!(k, ErrorKind::InvalidBase64(_))),
        // fold line before any attribute
        (b" dn: cn=a\ncn: a\n", 1, 1, |k| matches!(k, ErrorKind::FoldWithoutLine)),
        (b"dn: cn=a\ncn: a\n\n continued\n", 4, 1, |k| matches!(k, ErrorKind::FoldWithoutLine)),
        // NUL in a SAFE-STRING
        (b"dn: cn=a\ncn: a\0b\n", 2, 6, |k| matches!(k, ErrorKind::UnsafeByte(0))),
        // lone CR inside a value
        (b"dn: cn=a\ncn: a\rb\n", 2, 6, |k| matches!(k, ErrorKind::UnsafeByte(b'\r'))),
        // leading colon / '<' in a plain DN (an attribute value is taken, with a warning: see below)
        (b"dn: :cn=a\ncn: a\n", 1, 5, |k| matches!(k, ErrorKind::UnsafeInitChar(':'))),
        (b"dn: <cn=a\ncn: a\n", 1, 5, |k| matches!(k, ErrorKind::UnsafeInitChar('<'))),
        // missing '-' terminator before the next op (at the end of the record it is taken: see below)
        (b"dn: cn=a\nchangetype: modify\nadd: cn\ncn: x\nreplace: sn\nsn: y\n-\n", 5, 1, |k| {
            matches!(k, ErrorKind::MissingModSeparator(_))
        }),
        (b"dn: cn=a\nchangetype: modify\nadd: cn\nsn: x\n-\n", 4, 1, |k| {
            matches!(k, ErrorKind::ModAttrMismatch { .. })
        }),
        // unknown changetype
        (b"dn: cn=a\nchangetype: frobnicate\n", 2, 13, |k| matches!(k, ErrorKind::UnknownChangeType(_))),
        // deleteoldrdn not 0/1
        (b"dn: cn=a\nchangetype: modrdn\nnewrdn: cn=b\ndeleteoldrdn: yes\n", 4, 15, |k| {
            matches!(k, ErrorKind::InvalidDeleteOldRdn(_))
        }),
        (b"dn: cn=a\nchangetype: modrdn\ndeleteoldrdn: 1\n", 3, 1, |k| matches!(k, ErrorKind::Unexpected { .. })),
        // missing colon, as in the brief's example message
        (b"dn: cn=a\ncn foo\n", 2, 3, |k| matches!(k, ErrorKind::ExpectedColon)),
        (b"dn: cn=a\ncn;: foo\n", 2, 4, |k| matches!(k, ErrorKind::EmptyOption)),
        // record not starting with dn
        (b"cn: a\n", 1, 1, |k| matches!(k, ErrorKind::ExpectedDn { .. })),
        (b"version: 2\ndn: cn=a\ncn: a\n", 1, 1, |k| matches!(k, ErrorKind::UnsupportedVersion(_))),
        (b"dn: cn=a\n", 2, 1, |k| matches!(k, ErrorKind::NoAttributes)),
        (b"dn: cn=a\ncontrol: 1.2.3\ncn: x\n", 3, 1, |k| matches!(k, ErrorKind::ExpectedChangeType)),
        (b"dn: cn=a\ncontrol: 1.2.3 maybe\nchangetype: delete\n", 2, 16, |k| matches!(k, ErrorKind::InvalidControl(_))),
        (b"dn: cn=a\nchangetype: delete\ncn: x\n", 3, 1, |k| matches!(k, ErrorKind::Unexpected { .. })),
        // base64 DN that is not UTF-8
        (b"dn:: /w==\ncn: a\n", 1, 6, |k| matches!(k, ErrorKind::NotUtf8("DN"))),
        (b"dn:< file:///etc/passwd\ncn: a\n", 1, 4, |k| matches!(k, ErrorKind::UrlNotAllowed("DN"))),
        (b"dn: cn=a\ncn:< file:///etc/passwd\n", 2, 6, |k| matches!(k, ErrorKind::UrlDisabled)),
    ];
    for (input, line, column, want) in cases {
        let e = first_error(input);
        let shown = String::from_utf8_lossy(input);
        assert!(want(&e.kind), "{shown:?}: wrong kind: {e}");
        assert_eq!((e.line, e.column), (*line, *column), "{shown:?}: {e}");
    }
}

/// What libldap (`ldapadd`, `ldapmodify`) accepts beyond RFC 2849 is read
/// the same way, and each such thing is reported once as a warning.
#[test]
fn what_ldapmodify_accepts_is_read_with_a_warning() {
    let read = |input: &[u8]| {
        let mut reader = LdifReader::new(input);
        let records: Vec<Record> = reader.by_ref().collect::<Result<_, _>>().unwrap();
        let warnings: Vec<String> = reader.take_warnings().iter().map(ToString::to_string).collect();
        (records, warnings)
    };
    // A plain value starting with '<' or ':' after the space is that value.
    let (records, warnings) = read(b"dn: cn=a\ncn:  <x\ndescription: :y\n");
    let Record::Content(e) = &records[0] else { panic!("{records:?}") };
    assert_eq!(e.attrs[0].values, [b"<x".to_vec()]);
    assert_eq!(e.attrs[1].values, [b":y".to_vec()]);
    assert_eq!(
        warnings,
        [
            "line 2: the value of cn starts with '<', which RFC 2849 allows only base64-encoded ('::'); read as \
             the plain value, as ldapadd does",
            "line 3: the value of description starts with ':', which RFC 2849 allows only base64-encoded ('::'); \
             read as the plain value, as ldapadd does",
        ]
    );
    // The last change of a modify record without its '-'.
    let (records, warnings) = read(b"dn: cn=a\nchangetype: modify\nadd: cn\ncn: x\n-\nreplace: sn\nsn: y\n\n");
    let Record::Change(ChangeRecord { kind: ChangeKind::Modify(mods), .. }) = &records[0] else {
        panic!("{records:?}")
    };
    assert_eq!(mods.len(), 2);
    assert_eq!((mods[1].op, mods[1].attr.as_str(), &mods[1].values), (ModOp::Replace, "sn", &vec![b"y".to_vec()]));
    assert_eq!(
        warnings,
        ["line 6: the modification of \"sn\" has no closing '-' line before the end of the record; applied as \
          complete, as ldapmodify does"]
    );
    // An empty modify record is a modify without changes (RFC 2849 allows it).
    let (records, warnings) = read(b"dn: cn=a\nchangetype: modify\n\n");
    assert!(matches!(&records[0], Record::Change(ChangeRecord { kind: ChangeKind::Modify(m), .. }) if m.is_empty()));
    assert!(warnings.is_empty(), "{warnings:?}");
    // Content and change records mixed: read both, warn once.
    let (records, warnings) =
        read(b"dn: cn=a\ncn: a\n\ndn: cn=b\nchangetype: delete\n\ndn: cn=c\ncn: c\n\ndn: cn=d\nchangetype: delete\n");
    assert_eq!(records.len(), 4);
    assert_eq!(
        warnings,
        ["line 4: a change record in a file of content records: RFC 2849 forbids mixing them; read as `ldapmodify \
          -a` does (a content record is an add)"]
    );
}

#[test]
fn error_message_format() {
    let e = first_error(b"dn: cn=a\ncn: a\n\n\n\n\n\n\n\n\n\ndn: cn=b\ncn foo\n");
    assert_eq!(e.to_string(), "line 13, column 3: expected ':' after the attribute description");
}

#[test]
fn parsing_resumes_after_a_bad_record() {
    let input = b"dn: cn=a\ncn:: !!!\nsn: x\n\ndn: cn=b\ncn: b\n";
    let got: Vec<_> = LdifReader::new(&input[..]).collect();
    assert_eq!(got.len(), 2);
    assert!(matches!(&got[0], Err(e) if e.line == 2));
    assert!(matches!(&got[1], Ok(r) if r.dn() == "cn=b"));
}

#[test]
fn crlf_line_ends() -> Result<(), LdifError> {
    let input =
        b"version: 1\r\ndn: cn=Babs,\r\n dc=example\r\ncn: Babs\r\ndescription:: w6k=\r\n\r\ndn: cn=b\r\ncn: b\r\n";
    let recs = parse_all(&input[..], ParseOptions::default())?;
    assert_eq!(recs.len(), 2);
    let Record::Content(e) = &recs[0] else { panic!("{recs:?}") };
    assert_eq!(e.dn, "cn=Babs,dc=example");
    assert_eq!(e.attrs[0].values, [b"Babs".to_vec()]);
    assert_eq!(e.attrs[1].values, ["é".as_bytes().to_vec()]);
    Ok(())
}

#[test]
fn fold_inside_a_multibyte_character() -> Result<(), LdifError> {
    // "홍" is ED 99 8D; fold after its first byte, in the DN and a value.
    let mut input = b"dn: cn=\xed\n \x99\x8d,dc=kr\ncn: \xed\x99\n \x8d\xea\xb8\xb8\xeb\x8f\x99\n".to_vec();
    input.extend_from_slice(b"# a comment\n  folded comment continuation\n");
    let recs = parse_all(&input[..], ParseOptions::default())?;
    let Record::Content(e) = &recs[0] else { panic!("{recs:?}") };
    assert_eq!(e.dn, "cn=홍,dc=kr");
    assert_eq!(e.attrs[0].values, ["홍길동".as_bytes().to_vec()]);
    Ok(())
}

fn big_record(len: usize) -> Vec<u8> {
    let mut input = b"dn: cn=big\ndescription: ".to_vec();
    input.resize(input.len() + len, b'x');
    input.extend_from_slice(b"\ncn: big\n\ndn: cn=next\ncn: next\n");
    input
}

#[test]
fn ten_megabyte_value() -> Result<(), LdifError> {
    let input = big_record(10 * 1024 * 1024);
    let recs = parse_all(&input[..], ParseOptions::default())?;
    let Record::Content(e) = &recs[0] else { panic!("{recs:?}") };
    assert_eq!(e.attrs[0].values[0].len(), 10 * 1024 * 1024);
    assert_eq!(recs.len(), 2);

    // With a 1 MiB limit the big record is refused and the next one still read.
    let opts = ParseOptions::default().with_max_record_size(1024 * 1024);
    let got: Vec<_> = LdifReader::with_options(&input[..], opts).collect();
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(matches!(&got[0], Err(e) if e.line == 2 && matches!(e.kind, ErrorKind::RecordTooLarge { .. })));
    assert!(matches!(&got[1], Ok(r) if r.dn() == "cn=next"));

    // Many small lines adding up beyond the limit are refused too.
    let mut many = b"dn: cn=many\n".to_vec();
    for _ in 0..2000 {
        many.extend_from_slice(b"description: 0123456789012345678901234567890123456789\n");
    }
    let opts = ParseOptions::default().with_max_record_size(64 * 1024);
    let err = parse_all(&many[..], opts).err().map(|e| e.kind);
    assert!(matches!(err, Some(ErrorKind::RecordTooLarge { limit: 65536 })), "{err:?}");
    Ok(())
}

#[test]
fn url_file_larger_than_limit_is_refused() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let f = dir.path().join("big");
    std::fs::write(&f, vec![0u8; 4096])?;
    let input = format!("dn: cn=a\njpegphoto:< file://{}\n", f.display());
    let opts = ParseOptions::default().with_url_base(dir.path()).with_max_record_size(1024);
    let err = parse_all(input.as_bytes(), opts).err().ok_or("accepted")?;
    assert!(matches!(err.kind, ErrorKind::RecordTooLarge { .. }), "{err}");
    let opts = ParseOptions::default().with_url_base(dir.path());
    let missing = format!("dn: cn=a\njpegphoto:< file://{}/nope%20here\n", dir.path().display());
    let err = parse_all(missing.as_bytes(), opts).err().ok_or("accepted")?;
    assert!(matches!(err.kind, ErrorKind::UrlRead { .. }), "{err}");
    Ok(())
}

/// Comment-only blocks before and between records are skipped, however many.
#[test]
fn comment_blocks_between_records() {
    let mut input = b"# header\n#\n\n# more\n\ndn: cn=a\nobjectClass: top\n\n".to_vec();
    for _ in 0..200_000 {
        input.extend_from_slice(b"#\n\n");
    }
    input.extend_from_slice(b"dn: cn=b\nobjectClass: top\n");
    let records = parse_all(input.as_slice(), ParseOptions::default()).unwrap();
    assert_eq!(records.len(), 2);
}
