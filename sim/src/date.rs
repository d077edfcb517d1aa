//! RFC 2822 dates as Duo clients send them in `Date` and `X-Duo-Date`, parsed without a clock.

/// Parses an RFC 2822 date (`Tue, 21 Aug 2012 17:29:18 -0000`) into unix seconds.
///
/// Accepts an optional weekday, one- or two-digit days, two- or four-digit years, and the zones
/// `±hhmm`, `GMT`, `UT`, `UTC` and `Z`; that covers every official client. `None` for anything
/// else, which the verifier reports as a bad signature rather than a panic.
pub fn parse_rfc2822(text: &str) -> Option<i64> {
    let text = text.trim();
    let text = match text.find(',') {
        Some(i) => text[i + 1..].trim_start(),
        None => text,
    };
    let mut parts = text.split_ascii_whitespace();
    let day: i64 = parts.next()?.parse().ok()?;
    let month = month_number(parts.next()?)?;
    let year = parse_year(parts.next()?)?;
    let (hour, minute, second) = parse_time(parts.next()?)?;
    let offset = parse_zone(parts.next()?)?;
    if parts.next().is_some() || !(1..=31).contains(&day) {
        return None;
    }
    let days = days_from_civil(year, month, day);
    Some(days * 86_400 + hour * 3600 + minute * 60 + second - offset)
}

fn month_number(name: &str) -> Option<i64> {
    const MONTHS: [&str; 12] = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
    let lower = name.to_ascii_lowercase();
    let index = MONTHS.iter().position(|m| *m == lower)?;
    i64::try_from(index + 1).ok()
}

fn parse_year(text: &str) -> Option<i64> {
    let year: i64 = text.parse().ok()?;
    // RFC 2822 §4.3: two-digit years below 50 are 20xx, the rest 19xx.
    match text.len() {
        2 if year < 50 => Some(2000 + year),
        2 => Some(1900 + year),
        4 => Some(year),
        _ => None,
    }
}

fn parse_time(text: &str) -> Option<(i64, i64, i64)> {
    let mut fields = text.split(':');
    let hour: i64 = fields.next()?.parse().ok()?;
    let minute: i64 = fields.next()?.parse().ok()?;
    let second: i64 = match fields.next() {
        Some(s) => s.parse().ok()?,
        None => 0,
    };
    let valid = hour < 24 && minute < 60 && second <= 60 && fields.next().is_none();
    valid.then_some((hour, minute, second))
}

fn parse_zone(text: &str) -> Option<i64> {
    match text.to_ascii_uppercase().as_str() {
        "GMT" | "UT" | "UTC" | "Z" => return Some(0),
        _ => {}
    }
    let bytes = text.as_bytes();
    if bytes.len() != 5 || !bytes[1..].iter().all(u8::is_ascii_digit) {
        return None;
    }
    let hours: i64 = text[1..3].parse().ok()?;
    let minutes: i64 = text[3..5].parse().ok()?;
    let offset = hours * 3600 + minutes * 60;
    match bytes[0] {
        b'+' => Some(offset),
        b'-' => Some(-offset),
        _ => None,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Formats unix seconds the way the official clients do: `Tue, 21 Aug 2012 17:29:18 -0000`.
pub fn format_rfc2822(unix: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let weekday = DAYS[usize::try_from(days.rem_euclid(7)).unwrap_or(0)];
    let month_name = MONTHS[usize::try_from(month - 1).unwrap_or(0)];
    format!(
        "{weekday}, {day:02} {month_name} {year:04} {:02}:{:02}:{:02} -0000",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// Unix seconds as ISO 8601 in UTC, as Duo's logs write `isotimestamp`: `2020-01-23T16:18:58+00:00`.
pub fn iso8601(unix: i64) -> String {
    let (year, month, day) = civil_from_days(unix.div_euclid(86_400));
    let secs = unix.rem_euclid(86_400);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}+00:00", secs / 3600, secs % 3600 / 60, secs % 60)
}

fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Whether a request dated `date` is acceptable at `now`, both unix seconds: within `skew`
/// seconds either way. Pure, so the window is tested without a clock.
pub fn within_skew(date: i64, now: i64, skew: i64) -> bool {
    (now - date).abs() <= skew
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documentation_date() {
        assert_eq!(parse_rfc2822("Tue, 21 Aug 2012 17:29:18 -0000"), Some(1_345_570_158));
        assert_eq!(parse_rfc2822("21 Aug 2012 19:29:18 +0200"), Some(1_345_570_158));
        assert_eq!(parse_rfc2822("Tue, 21 Aug 12 17:29:18 GMT"), Some(1_345_570_158));
    }

    #[test]
    fn rejects_junk_without_panicking() {
        for junk in [
            "",
            "Tue,",
            "Tue, 99 Aug 2012 17:29:18 -0000",
            "Tue, 21 Foo 2012 1:2:3 -0000",
            "Tue, 21 Aug 2012 17:29:18 +99",
            "Tue, 21 Aug 2012 25:00:00 -0000",
            "ü, 21 Aug 2012 17:29:18 -0000 x",
        ] {
            assert_eq!(parse_rfc2822(junk), None, "{junk:?}");
        }
    }

    #[test]
    fn formats_and_parses_back() {
        for unix in [0, 1_345_570_158, 1_716_552_000, 4_102_444_799] {
            assert_eq!(parse_rfc2822(&format_rfc2822(unix)), Some(unix));
        }
        assert_eq!(format_rfc2822(1_716_552_000), "Fri, 24 May 2024 12:00:00 -0000");
    }

    #[test]
    fn skew_window_is_inclusive_both_ways() {
        assert!(within_skew(1000, 1060, 60));
        assert!(within_skew(1060, 1000, 60));
        assert!(!within_skew(1000, 1061, 60));
        assert!(!within_skew(1061, 1000, 60));
    }
}
