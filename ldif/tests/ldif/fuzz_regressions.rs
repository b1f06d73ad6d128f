//! Inputs `cargo fuzz run parse` (ldif/fuzz) found, each kept with the fix:
//! what the parser accepts, the writer writes, and it reads back the same.

use dirbroker_ldif::{ErrorKind, LdifReader, LdifWriter, Record};

/// The fuzz target's property, for one input.
fn round_trips(input: &[u8]) {
    for record in LdifReader::new(input).flatten() {
        let mut w = LdifWriter::new(Vec::new());
        if let Err(e) = w.write_record(&record) {
            panic!("the writer refused a record the parser accepted ({e}): {record:?}");
        }
        let bytes = w.finish().unwrap_or_else(|e| panic!("{e}"));
        let back: Vec<Record> = LdifReader::new(bytes.as_slice())
            .collect::<Result<_, _>>()
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&bytes)));
        assert_eq!(back, vec![record]);
    }
}

/// Crash 1: a control "OID" starting with '-' was accepted by the parser
/// (any run of alphanumerics, '.' and '-') but refused by the writer. Both
/// now require a numeric OID or a descriptor.
#[test]
fn control_oid_must_be_an_oid() {
    let input = b"dn: cnorg\ncontrol: -.2.840.11355rue\nchangetype: delete\n\ndn: dn: cdelet";
    round_trips(input);
    let first = LdifReader::new(&input[..]).next();
    match first {
        Some(Err(e)) => {
            assert_eq!((e.line, e.column), (2, 10), "{e}");
            assert!(matches!(e.kind, ErrorKind::InvalidControl(_)), "{e}");
        }
        other => panic!("accepted: {other:?}"),
    }
    for bad in ["1..2", "1.2.", "1.2.3true"] {
        let text = format!("dn: cn=x\ncontrol: {bad}\nchangetype: delete\n");
        assert!(matches!(LdifReader::new(text.as_bytes()).next(), Some(Err(_))), "{bad}");
    }
    round_trips(b"dn: cn=x\ncontrol: 1.2.840.113556.1.4.805 true\ncontrol: manageDsaIT\nchangetype: delete\n");
}
