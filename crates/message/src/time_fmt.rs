//! ASN.1 times and RFC 3339, via the `time` crate.

use time::{OffsetDateTime, PrimitiveDateTime, format_description::well_known::Rfc3339};

use crate::asn1::{self, TAG_GENERALIZED_TIME, TAG_UTC_TIME, Tlv};

/// Encodes a signing time: UTCTime for 1950–2049, GeneralizedTime otherwise (RFC 5652 §11.3).
pub fn encode_time(unix: i64) -> Vec<u8> {
    let t = OffsetDateTime::from_unix_timestamp(unix).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let (y, mo, d, h, mi, s) = (
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
    );
    if (1950..2050).contains(&y) {
        let text = format!("{:02}{mo:02}{d:02}{h:02}{mi:02}{s:02}Z", y % 100);
        asn1::encode(TAG_UTC_TIME, text.as_bytes())
    } else {
        let text = format!("{y:04}{mo:02}{d:02}{h:02}{mi:02}{s:02}Z");
        asn1::encode(TAG_GENERALIZED_TIME, text.as_bytes())
    }
}

/// Decodes a UTCTime or GeneralizedTime (Z form, optional fractional seconds) to Unix seconds.
pub fn decode_time(tlv: &Tlv<'_>) -> Option<i64> {
    let text = std::str::from_utf8(tlv.content).ok()?;
    let text = text.strip_suffix('Z')?;
    let (year, rest) = match tlv.tag {
        TAG_UTC_TIME => {
            let yy: i32 = text.get(..2)?.parse().ok()?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, text.get(2..)?)
        }
        TAG_GENERALIZED_TIME => (text.get(..4)?.parse().ok()?, text.get(4..)?),
        _ => return None,
    };
    let rest = rest.split('.').next()?;
    if !rest.bytes().all(|b| b.is_ascii_digit()) || !(rest.len() == 10 || rest.len() == 8) {
        return None;
    }
    let n = |i: usize| -> Option<u8> { rest.get(i..i + 2)?.parse().ok() };
    let month = time::Month::try_from(n(0)?).ok()?;
    let date = time::Date::from_calendar_date(year, month, n(2)?).ok()?;
    let sec = if rest.len() == 10 { n(8)? } else { 0 };
    let t = time::Time::from_hms(n(4)?, n(6)?, sec).ok()?;
    Some(
        PrimitiveDateTime::new(date, t)
            .assume_utc()
            .unix_timestamp(),
    )
}

/// RFC 3339 text for reports.
pub fn rfc3339(unix: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| unix.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip() {
        for t in [0i64, 1_700_000_000, 2_600_000_000, -631_152_000] {
            let der = encode_time(t);
            let tlv = asn1::parse_single(&der).unwrap();
            assert_eq!(decode_time(&tlv), Some(t), "{t}");
        }
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
    }
}
