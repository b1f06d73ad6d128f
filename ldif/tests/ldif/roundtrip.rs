//! `parse(write(x)) == x` over deterministic generated records, and a
//! no-panic loop over random and mangled input.

use dirbroker_ldif::{
    Attr, ChangeKind, ChangeRecord, Control, Entry, LdifReader, LdifWriter, ModOp, ModSpec, ParseOptions, Record,
    parse_all,
};

/// xorshift64*: deterministic, good enough to vary test data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }
}

const NAMES: &[&str] = &[
    "cn",
    "sn",
    "description",
    "userCertificate;binary",
    "cn;lang-ko",
    "ou;lang-ja;phonetic",
    "2.5.4.3",
    "jpegPhoto",
    "mail",
    "title;lang-en",
    "x-custom-attr",
];

fn value(rng: &mut Rng) -> Vec<u8> {
    match rng.below(10) {
        0 => (0..rng.below(300)).map(|_| rng.next() as u8).collect(), // binary
        1 => "홍길동 한국어 텍스트".repeat(1 + rng.below(8)).into_bytes(),
        2 => rng
            .pick(&[" leading space", ":colon", "<angle", "trailing ", "a\nb", "a\r\nb", "nul\0", ""])
            .as_bytes()
            .to_vec(),
        3 => "long value that folds ".repeat(1 + rng.below(40)).trim_end().as_bytes().to_vec(),
        _ => format!("value {}", rng.next() % 100_000).into_bytes(),
    }
}

fn dn(rng: &mut Rng) -> String {
    match rng.below(5) {
        0 => format!("cn=홍길동 {},ou=사람,dc=example,dc=kr", rng.below(1000)),
        1 => format!(" cn=leading space {}", rng.below(9)),
        2 => format!("uid=user{},ou={},dc=example,dc=com", rng.below(10_000), "very long ou ".repeat(8).trim_end()),
        3 => String::new(),
        _ => format!("uid=u{},dc=example,dc=com", rng.below(100)),
    }
}

fn attrs(rng: &mut Rng) -> Vec<Attr> {
    let mut names: Vec<&str> = NAMES.to_vec();
    let n = 1 + rng.below(6);
    (0..n)
        .map(|_| {
            let name = names.remove(rng.below(names.len()));
            Attr { name: name.to_owned(), values: (0..1 + rng.below(3)).map(|_| value(rng)).collect() }
        })
        .collect()
}

fn change(rng: &mut Rng) -> Record {
    let controls = (0..rng.below(3))
        .map(|_| Control {
            oid: format!("1.2.840.113556.1.4.{}", rng.below(2000)),
            critical: rng.below(2) == 0,
            value: if rng.below(2) == 0 { Some(value(rng)) } else { None },
        })
        .collect();
    let kind = match rng.below(4) {
        0 => ChangeKind::Add(attrs(rng)),
        1 => ChangeKind::Delete,
        2 => ChangeKind::Modify(
            (0..rng.below(4))
                .map(|_| ModSpec {
                    op: *rng.pick(&[ModOp::Add, ModOp::Delete, ModOp::Replace, ModOp::Increment]),
                    attr: rng.pick(NAMES).to_string(),
                    values: (0..rng.below(3)).map(|_| value(rng)).collect(),
                })
                .collect(),
        ),
        _ => ChangeKind::ModRdn {
            new_rdn: dn(rng),
            delete_old_rdn: rng.below(2) == 0,
            new_superior: if rng.below(2) == 0 { Some(dn(rng)) } else { None },
        },
    };
    Record::Change(ChangeRecord { dn: dn(rng), controls, kind })
}

fn roundtrip(records: &[Record], version: bool) -> Result<(), Box<dyn std::error::Error>> {
    let mut w = LdifWriter::new(Vec::new()).with_version(version);
    for r in records {
        w.write_record(r)?;
    }
    let bytes = w.finish()?;
    assert!(bytes.split(|&b| b == b'\n').all(|l| l.len() <= 76));
    assert!(bytes.is_ascii());
    let back = parse_all(&bytes[..], ParseOptions::default())?;
    assert_eq!(back, records, "{}", String::from_utf8_lossy(&bytes));
    Ok(())
}

#[test]
fn generated_records_roundtrip() -> Result<(), Box<dyn std::error::Error>> {
    let mut rng = Rng(0x5eed_1da9);
    let mut total = 0;
    for file in 0..200 {
        let n = 1 + rng.below(8);
        let content = file % 2 == 0;
        let records: Vec<Record> = (0..n)
            .map(|_| {
                if content {
                    Record::Content(Entry { dn: dn(&mut rng), attrs: attrs(&mut rng) })
                } else {
                    change(&mut rng)
                }
            })
            .collect();
        roundtrip(&records, rng.below(2) == 0)?;
        total += n;
    }
    assert!(total > 500);
    Ok(())
}

#[test]
fn no_panic_on_random_or_mangled_input() {
    let mut rng = Rng(42);
    let fragments: &[&[u8]] = &[
        b"dn: cn=a\n",
        b"dn:: ",
        b"cn: x\n",
        b"cn:: Zm9v\n",
        b" ",
        b"\n",
        b"\r\n",
        b"-\n",
        b"#c\n",
        b"changetype: modify\n",
        b"changetype: modrdn\n",
        b"add: cn\n",
        b"replace: sn\n",
        b"newrdn: cn=b\n",
        b"deleteoldrdn: 1\n",
        b"newsuperior: dc=x\n",
        b"control: 1.2.3 true:: AA==\n",
        b"version: 1\n",
        b"jpegphoto:< file:///etc/passwd\n",
        b":",
        b";",
        b"\0",
        "한".as_bytes(),
        b"\xed",
        b"changetype: add\n",
        b"changetype: delete\n",
        b"=",
        b"<",
    ];
    let opts = ParseOptions::default().with_url_base(std::env::temp_dir()).with_max_record_size(4096);
    for i in 0..20_000 {
        let mut input = Vec::new();
        for _ in 0..rng.below(30) {
            if i % 3 == 0 {
                input.push(rng.next() as u8);
            } else {
                input.extend_from_slice(rng.pick::<&[u8]>(fragments));
            }
        }
        // Every result is fine as long as it is not a panic, and iteration ends.
        let n = LdifReader::with_options(&input[..], opts.clone()).take(1000).count();
        assert!(n < 1000);
    }
}
