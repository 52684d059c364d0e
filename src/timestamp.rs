//! RFC 3339 times, as image configs carry them (`created`). A leaf module:
//! the layer engine and the config editor both need it, and neither may
//! import the other.

/// The latest time RFC 3339 can write (`9999-12-31T23:59:59Z`): four-digit
/// years.
pub const MAX_RFC3339_EPOCH: u64 = 253_402_300_799;

/// RFC 3339 UTC time of a Unix epoch (`2023-11-14T22:13:20Z`), by the `time`
/// crate. An epoch past [`MAX_RFC3339_EPOCH`] is written as that time.
pub fn rfc3339(epoch: u64) -> String {
    let secs = epoch.min(MAX_RFC3339_EPOCH) as i64;
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        // Unreachable within the clamp; a constant keeps the signature.
        .unwrap_or_else(|| "9999-12-31T23:59:59Z".to_string())
}

/// Parses an RFC 3339 time (`2023-11-14T22:13:20Z`, fractions and
/// `±HH:MM` offsets accepted, fractions dropped) into Unix seconds, by the
/// `time` crate: impossible dates (February 31) are refused. `None` if
/// malformed or before 1970.
pub fn parse_rfc3339(s: &str) -> Option<u64> {
    // RFC 3339 lets applications use a space for `T` (section 5.6's note),
    // which the `time` crate does not take; the parser before it did.
    let t_form;
    let s = match s.as_bytes().get(10) {
        Some(b' ') if s.is_char_boundary(10) && s.is_char_boundary(11) => {
            t_form = format!("{}T{}", &s[..10], &s[11..]);
            t_form.as_str()
        }
        _ => s,
    };
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    u64::try_from(t.unix_timestamp()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trips() {
        for e in [0u64, 951_782_400, 1_700_000_000, 4_102_444_800] {
            assert_eq!(parse_rfc3339(&rfc3339(e)), Some(e));
        }
        assert_eq!(
            parse_rfc3339("2023-11-14T23:13:20.123456+01:00"),
            Some(1_700_000_000)
        );
        assert_eq!(parse_rfc3339("2023-11-14"), None);
        assert_eq!(parse_rfc3339("1969-12-31T23:59:59Z"), None);
        // A base image's `created` is untrusted: non-ASCII offsets are
        // rejected, not sliced mid-character.
        assert_eq!(parse_rfc3339("2023-11-14T22:13:20+0\u{e9}00"), None);
        assert_eq!(parse_rfc3339("2023-11-14T22:13:20\u{e9}\u{e9}\u{e9}"), None);
        // Impossible dates and times, which the hand-written parser let by.
        for bad in [
            "2024-02-31T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2024-04-31T12:00:00Z",
            "2024-01-01T24:00:00Z",
            "2024-01-01T00:00:00+24:00",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
        assert_eq!(parse_rfc3339("2024-02-29T00:00:00Z"), Some(1_709_164_800));
        // Lowercase separators and a space, as RFC 3339 allows.
        assert_eq!(parse_rfc3339("2023-11-14t22:13:20z"), Some(1_700_000_000));
        assert_eq!(parse_rfc3339("2023-11-14 22:13:20Z"), Some(1_700_000_000));
        // Formatting is unchanged: whole seconds, `Z`, the year clamped.
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(u64::MAX), "9999-12-31T23:59:59Z");
    }

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(4_102_444_799), "2099-12-31T23:59:59Z");
    }
}
