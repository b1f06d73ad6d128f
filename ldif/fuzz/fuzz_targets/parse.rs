//! Arbitrary bytes into the streaming LDIF parser: it must never panic, and
//! every record it accepts must come back identical after being written
//! (parse(write(x)) == x).

#![no_main]

use dirbroker_ldif::{LdifReader, LdifWriter, ParseOptions, Record};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // A small record limit keeps the oversize paths reachable.
    let options = ParseOptions::default().with_max_record_size(64 * 1024);
    for item in LdifReader::with_options(data, options).take(64) {
        let Ok(record) = item else { continue };
        let mut w = LdifWriter::new(Vec::new()).with_version(true);
        if let Err(e) = w.write_record(&record) {
            // Whatever the parser produced, LDIF can express.
            panic!("the writer refused a record the parser accepted ({e}): {record:?}");
        }
        let bytes = match w.finish() {
            Ok(b) => b,
            Err(e) => panic!("finishing into a Vec failed: {e}"),
        };
        let back: Vec<Record> = match LdifReader::new(bytes.as_slice()).collect::<Result<_, _>>() {
            Ok(r) => r,
            Err(e) => panic!("written record does not parse: {e}\n{}", String::from_utf8_lossy(&bytes)),
        };
        assert_eq!(back, vec![record], "round trip changed the record:\n{}", String::from_utf8_lossy(&bytes));
    }
});
