//! LDAP value syntaxes dirbroker writes and reads: BOOLEAN, INTEGER,
//! GeneralizedTime (RFC 4517 §3.3).

use time::{OffsetDateTime, PrimitiveDateTime, UtcOffset, macros::format_description};

pub fn bool_value(b: bool) -> Vec<u8> {
    if b { b"TRUE".to_vec() } else { b"FALSE".to_vec() }
}

pub fn int_value(i: i64) -> Vec<u8> {
    i.to_string().into_bytes()
}

/// `YYYYMMDDHHMMSSZ`, always UTC, whole seconds.
pub fn generalized_time(t: OffsetDateTime) -> Vec<u8> {
    let t = t.to_offset(UtcOffset::UTC);
    format!("{:04}{:02}{:02}{:02}{:02}{:02}Z", t.year(), u8::from(t.month()), t.day(), t.hour(), t.minute(), t.second())
        .into_bytes()
}

/// Parse the GeneralizedTime forms slapd stores: `YYYYMMDDHHMMSS[.fraction]Z`
/// or with a `+hhmm`/`-hhmm` offset.
pub fn parse_generalized_time(s: &str) -> Result<OffsetDateTime, String> {
    let bad = || format!("{s:?} is not a GeneralizedTime (YYYYMMDDHHMMSSZ)");
    let head = s.get(..14).ok_or_else(bad)?;
    let rest = s.get(14..).ok_or_else(bad)?;
    let fmt = format_description!("[year][month][day][hour][minute][second]");
    let naive = PrimitiveDateTime::parse(head, &fmt).map_err(|_| bad())?;
    let (frac, zone) = match rest.strip_prefix(['.', ',']) {
        Some(r) => {
            let digits = r.find(|c: char| !c.is_ascii_digit()).unwrap_or(r.len());
            (r.get(..digits).unwrap_or(""), r.get(digits..).unwrap_or(""))
        }
        None => ("", rest),
    };
    let nanos: u32 = if frac.is_empty() {
        0
    } else {
        let padded: String = frac.chars().chain(std::iter::repeat('0')).take(9).collect();
        padded.parse().map_err(|_| bad())?
    };
    let offset = match zone {
        "Z" => UtcOffset::UTC,
        z if z.len() == 5 && (z.starts_with('+') || z.starts_with('-')) => {
            let h: i8 = z.get(1..3).and_then(|x| x.parse().ok()).ok_or_else(bad)?;
            let m: i8 = z.get(3..5).and_then(|x| x.parse().ok()).ok_or_else(bad)?;
            let sign = if z.starts_with('-') { -1 } else { 1 };
            UtcOffset::from_hms(sign * h, sign * m, 0).map_err(|_| bad())?
        }
        _ => return Err(bad()),
    };
    let t = naive.assume_offset(offset).replace_nanosecond(nanos).map_err(|_| bad())?;
    Ok(t.to_offset(UtcOffset::UTC))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generalized_time_round_trips() {
        let t = parse_generalized_time("20261122134848Z").unwrap();
        assert_eq!(generalized_time(t), b"20261122134848Z");
        let off = parse_generalized_time("20261122154848+0200").unwrap();
        assert_eq!(off, t);
        let frac = parse_generalized_time("20261122134848.5Z").unwrap();
        assert_eq!(frac.nanosecond(), 500_000_000);
        for bad in ["", "2026", "20261322134848Z", "20261122134848", "20261122134848X", "20261122134848+02"] {
            assert!(parse_generalized_time(bad).is_err(), "{bad}");
        }
    }
}
