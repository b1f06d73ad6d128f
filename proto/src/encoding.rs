//! Small encodings shared by every crate: hexadecimal, and the one
//! length-prefixed concatenation every protocol signs, seals under and
//! derives keys from.

use zeroize::Zeroize;

/// Lowercase hexadecimal.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Length-prefixed concatenation: `u32_be(len) ‖ part` for each part, so no
/// two different part lists encode alike (the papers' bare `‖` is
/// ambiguous). [`raw`](Lp::raw) appends bytes without a prefix, for a
/// leading fixed label or a fixed-width tail. [`split_lp`] reads parts back.
#[derive(Debug, Default, Clone)]
pub struct Lp(Vec<u8>);

impl Lp {
    /// Starts an encoding with a domain: `protocol` and `label`, both parts.
    pub fn domain(protocol: &str, label: &str) -> Self {
        Lp::default().part(protocol.as_bytes()).part(label.as_bytes())
    }

    /// Appends one length-prefixed part.
    pub fn part(mut self, p: &[u8]) -> Self {
        let len = u32::try_from(p.len()).unwrap_or(u32::MAX);
        self.0.extend_from_slice(&len.to_be_bytes());
        self.0.extend_from_slice(p);
        self
    }

    /// Appends bytes as they are (no length prefix).
    pub fn raw(mut self, b: &[u8]) -> Self {
        self.0.extend_from_slice(b);
        self
    }

    /// Appends an i64 as a part (big-endian, 8 bytes).
    pub fn int(self, v: i64) -> Self {
        self.part(&v.to_be_bytes())
    }

    /// The encoding.
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }

    /// Consumes into the encoding.
    pub fn into_bytes(mut self) -> Vec<u8> {
        std::mem::take(&mut self.0)
    }
}

impl Drop for Lp {
    fn drop(&mut self) {
        // Encodings sometimes carry secrets (r, S_A plaintexts).
        self.0.zeroize();
    }
}

/// Splits a length-prefixed concatenation (no raw bytes) into parts; the
/// error names the flaw.
pub fn split_lp(mut b: &[u8]) -> Result<Vec<&[u8]>, &'static str> {
    let mut out = Vec::new();
    while !b.is_empty() {
        let (len_bytes, rest) = b.split_first_chunk::<4>().ok_or("length prefix")?;
        let len = usize::try_from(u32::from_be_bytes(*len_bytes)).map_err(|_| "length")?;
        let (part, rest) = rest.split_at_checked(len).ok_or("truncated part")?;
        out.push(part);
        b = rest;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn hex_is_lowercase_two_digits_per_byte() {
        assert_eq!(super::hex(&[0x00, 0x0f, 0xa0, 0xff]), "000fa0ff");
        assert_eq!(super::hex(&[]), "");
    }

    #[test]
    fn parts_are_prefixed_raw_bytes_are_not_and_split_reads_parts_back() {
        let e = super::Lp::default().part(b"a").part(b"").int(1).into_bytes();
        assert_eq!(e, [&[0, 0, 0, 1, b'a'][..], &[0, 0, 0, 0], &[0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 1]].concat());
        assert_eq!(super::split_lp(&e), Ok(vec![&b"a"[..], b"", &1i64.to_be_bytes()]));
        assert_eq!(super::Lp::default().raw(b"L").part(b"x").raw(&[9]).into_bytes(), b"L\0\0\0\x01x\x09");
        assert_eq!(super::split_lp(&[0, 0, 0]), Err("length prefix"));
        assert_eq!(super::split_lp(&[0, 0, 0, 2, 1]), Err("truncated part"));
    }
}
