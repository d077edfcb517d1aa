//! Duo's `Date` header, as Python's `email.utils.formatdate()` writes it: RFC 2822 in UTC.
//!
//! Civil-date arithmetic written out rather than a date crate: it is twenty lines, and the
//! format must match Python's to the byte.

/// Duo's `Date`: what Python's `email.utils.formatdate()` gives, RFC 2822 in UTC with the zone
/// written `-0000`, e.g. `Tue, 21 Aug 2012 17:29:18 -0000`.
///
/// `None` outside years 1 to 9999, where Python's `formatdate` fails too.
pub fn rfc2822_date(unix_seconds: i64) -> Option<String> {
    const MIN: i64 = -62_135_596_800; // 0001-01-01T00:00:00Z
    const MAX: i64 = 253_402_300_799; // 9999-12-31T23:59:59Z
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    if !(MIN..=MAX).contains(&unix_seconds) {
        return None;
    }
    let days = unix_seconds.div_euclid(86_400);
    let secs = unix_seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    // 1970-01-01 was a Thursday.
    let weekday = DAYS[(days + 4).rem_euclid(7) as usize];
    let month = MONTHS[(month - 1) as usize];
    // Written digit by digit: `format!` with padding was a tenth of a microsecond a request,
    // and every request (and every write's intent) dates itself.
    let mut out = String::with_capacity(31);
    out.push_str(weekday);
    out.push_str(", ");
    push_digits(&mut out, day as u32, 2);
    out.push(' ');
    out.push_str(month);
    out.push(' ');
    push_digits(&mut out, year as u32, 4);
    out.push(' ');
    push_digits(&mut out, (secs / 3600) as u32, 2);
    out.push(':');
    push_digits(&mut out, (secs % 3600 / 60) as u32, 2);
    out.push(':');
    push_digits(&mut out, (secs % 60) as u32, 2);
    out.push_str(" -0000");
    Some(out)
}

/// `n` in `width` decimal digits, zero-padded (`n` has at most `width` digits).
fn push_digits(out: &mut String, n: u32, width: u32) {
    for place in (0..width).rev() {
        out.push(char::from(b'0' + (n / 10u32.pow(place) % 10) as u8));
    }
}

/// The current time as [`rfc2822_date`] writes it.
pub fn rfc2822_now() -> String {
    let now = match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        Ok(elapsed) => i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_secs()).unwrap_or(i64::MAX),
    };
    // A clock outside years 1–9999 is broken; the epoch still yields a well-formed header.
    rfc2822_date(now).unwrap_or_else(|| "Thu, 01 Jan 1970 00:00:00 -0000".to_owned())
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month 1–12, day 1–31); Howard Hinnant's
/// `civil_from_days`, exact for every `i64` day count a valid date produces.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], March-based
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod digit_tests {
    use super::*;

    /// The digit-by-digit header equals what `format!` with padding writes, across the range.
    #[test]
    fn the_header_is_written_as_format_would() {
        let mut t = -62_135_596_800i64;
        while t <= 253_402_300_799 {
            let days = t.div_euclid(86_400);
            let secs = t.rem_euclid(86_400);
            let (year, month, day) = civil_from_days(days);
            let weekday = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"][(days + 4).rem_euclid(7) as usize];
            let month = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
                [(month - 1) as usize];
            let want = format!(
                "{weekday}, {day:02} {month} {year:04} {:02}:{:02}:{:02} -0000",
                secs / 3600,
                secs % 3600 / 60,
                secs % 60
            );
            assert_eq!(rfc2822_date(t).as_deref(), Some(want.as_str()), "{t}");
            t += 7_777_777;
        }
    }
}
