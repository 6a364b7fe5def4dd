//! Moments given on the command line (`replica restore --at`), without a
//! date-time dependency: RFC 3339 or Unix seconds.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Parses `2026-12-07T10:42:07Z`, `2026-12-07T10:42:07.250+01:00`,
/// `2026-12-07 10:42:07Z` or Unix seconds (`1796640127`, `1796640127.5`).
pub fn parse_time(text: &str) -> Result<SystemTime, String> {
    let text = text.trim();
    let unix = match text.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        true => parse_seconds(text).map(|ms| (ms, 0)),
        false => parse_rfc3339(text),
    };
    let (ms, offset_s) = unix.ok_or_else(|| {
        format!(
            "`{text}` is not a time: give RFC 3339 (2026-12-07T10:42:07Z, or with an offset \
             such as +01:00) or Unix seconds"
        )
    })?;
    let ms = ms - offset_s * 1000;
    let magnitude = Duration::from_millis(ms.unsigned_abs());
    let at = match ms >= 0 {
        true => UNIX_EPOCH.checked_add(magnitude),
        false => UNIX_EPOCH.checked_sub(magnitude),
    };
    at.ok_or_else(|| format!("`{text}` is out of range"))
}

/// Unix seconds with an optional fraction, in milliseconds.
fn parse_seconds(text: &str) -> Option<i64> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty() || whole.len() > 12 || fraction.contains('.') {
        return None;
    }
    Some(whole.parse::<i64>().ok()? * 1000 + fraction_ms(fraction)?)
}

/// Milliseconds of the digits after a decimal point (beyond the third
/// ignored).
fn fraction_ms(digits: &str) -> Option<i64> {
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut ms = 0;
    for (i, scale) in [100, 10, 1].into_iter().enumerate() {
        if let Some(d) = digits.as_bytes().get(i) {
            ms += i64::from(d - b'0') * scale;
        }
    }
    Some(ms)
}

/// `YYYY-MM-DD[T ]HH:MM:SS[.fff](Z|±HH:MM)`: the local time in Unix
/// milliseconds, and the offset in seconds.
fn parse_rfc3339(text: &str) -> Option<(i64, i64)> {
    let b = text.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |from: usize, to: usize| num_of(text.get(from..to)?);
    let (year, month, day) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (hour, minute, second) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    let days_in_month = match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        1..=12 => 31,
        _ => return None,
    };
    if !(1..=days_in_month).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut rest = &text[19..];
    let mut ms = 0;
    if let Some(after) = rest.strip_prefix('.') {
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        ms = fraction_ms(&after[..digits])?;
        rest = &after[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6 && rest.as_bytes()[3] == b':' => {
            let sign = match rest.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let (h, m) = (num_of(&rest[1..3])?, num_of(&rest[4..6])?);
            if h > 23 || m > 59 {
                return None;
            }
            sign * (h * 3600 + m * 60)
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second;
    Some((secs * 1000 + ms, offset))
}

fn num_of(part: &str) -> Option<i64> {
    match part.bytes().all(|c| c.is_ascii_digit()) {
        true => part.parse().ok(),
        false => None,
    }
}

/// Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(text: &str) -> i64 {
        let at = parse_time(text).unwrap();
        at.duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
    }

    #[test]
    fn rfc3339_and_unix_seconds_name_the_same_moments() {
        assert_eq!(secs("1970-01-01T00:00:00Z"), 0);
        assert_eq!(secs("2000-03-01T00:00:00Z"), 951_868_800_000);
        assert_eq!(secs("2026-12-07T10:42:07Z"), 1_796_640_127_000);
        assert_eq!(secs("2026-12-07 10:42:07.25Z"), 1_796_640_127_250);
        assert_eq!(secs("2026-12-07T11:42:07+01:00"), 1_796_640_127_000);
        assert_eq!(secs("2026-12-07T05:12:07-05:30"), 1_796_640_127_000);
        assert_eq!(secs("2024-02-29T00:00:00Z"), 1_709_164_800_000);
        assert_eq!(secs("1796640127"), 1_796_640_127_000);
        assert_eq!(secs("1796640127.5"), 1_796_640_127_500);
    }

    #[test]
    fn what_is_not_a_time_is_refused_with_the_formats() {
        for bad in [
            "",
            "yesterday",
            "2026-12-07",
            "2026-12-07T10:42:07",
            "2026-13-07T10:42:07Z",
            "2026-02-30T10:42:07Z",
            "2026-12-07T24:00:00Z",
            "2026-12-07T10:42:07+1:00",
            "2026-12-07T10:42:07.Z",
            "1.2.3",
            ".",
        ] {
            let e = parse_time(bad).unwrap_err();
            assert!(e.contains("RFC 3339") || e.contains("range"), "{bad}: {e}");
        }
    }
}
