//! Formatting and framing, pure functions: RFC 5424 and RFC 3164 messages, RFC 6587
//! octet counting, and the hand-written UTC calendar conversion their timestamps need (no
//! date crate in the static binary).
//!
//! Why not the `syslog` crate: see the header of [`crate::log`].

use super::record::{Record, Severity};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A UTC calendar time with microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UtcTime {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    pub micros: u32,
}

impl UtcTime {
    /// Converts a system time; times before 1970 (only seen with an unset clock going
    /// backwards) are shown as the epoch rather than failing.
    pub fn from_system_time(t: SystemTime) -> UtcTime {
        let since = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
        let secs = i64::try_from(since.as_secs()).unwrap_or(i64::MAX);
        UtcTime::from_unix(secs, since.subsec_micros())
    }

    /// Converts seconds since the epoch (and a microsecond fraction).
    pub fn from_unix(secs: i64, micros: u32) -> UtcTime {
        let days = secs.div_euclid(86_400);
        let rest = secs.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        // `rest` is in 0..86400, so these fit in u32.
        UtcTime {
            year,
            month,
            day,
            hour: small(rest / 3600),
            minute: small(rest % 3600 / 60),
            second: small(rest % 60),
            micros: micros.min(999_999),
        }
    }

    /// RFC 3339 as RFC 5424 wants it: `2024-02-29T12:34:56.123456Z`.
    pub fn rfc3339(&self) -> String {
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
            self.year, self.month, self.day, self.hour, self.minute, self.second, self.micros
        )
    }

    /// The RFC 3164 timestamp `Feb  9 08:05:03` (day padded with a space, no year). The guest
    /// clock is UTC, so this is UTC too.
    pub fn rfc3164(&self) -> String {
        format!(
            "{} {:>2} {:02}:{:02}:{:02}",
            month_abbr(self.month),
            self.day,
            self.hour,
            self.minute,
            self.second
        )
    }
}

/// A calendar field known to be small and non-negative (an hour, a day); 0 if it were not.
fn small(v: i64) -> u32 {
    u32::try_from(v).unwrap_or(0)
}

/// Year, month (1-12) and day (1-31) of a day count since 1970-01-01 in the proleptic
/// Gregorian calendar (Howard Hinnant's `civil_from_days`).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days.saturating_add(719_468);
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // day of era, 0..=146096
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // year of era, 0..=399
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of year from March 1st, 0..=365
    let mp = (5 * doy + 2) / 153; // month from March, 0..=11
    let day = small(doy - (153 * mp + 2) / 5 + 1);
    let month = small(if mp < 10 { mp + 3 } else { mp - 9 });
    let year = yoe + era.saturating_mul(400) + i64::from(month <= 2);
    (year, month, day)
}

fn month_abbr(month: u32) -> &'static str {
    match month {
        1 => "Jan",
        2 => "Feb",
        3 => "Mar",
        4 => "Apr",
        5 => "May",
        6 => "Jun",
        7 => "Jul",
        8 => "Aug",
        9 => "Sep",
        10 => "Oct",
        11 => "Nov",
        _ => "Dec",
    }
}

/// Makes a line safe to put in one syslog message: trailing CR/LF are removed, a tab becomes a
/// space and every other control character becomes `?` (receivers split on newlines and
/// terminals act on escape sequences).
pub fn sanitize_text(text: &str) -> String {
    text.trim_end_matches(['\r', '\n'])
        .chars()
        .map(|c| match c {
            '\t' => ' ',
            c if c.is_control() => '?',
            c => c,
        })
        .collect()
}

/// An RFC 5424 header field: printable US-ASCII only (others become `_`), at most `max`
/// characters, and `-` (the NILVALUE) when empty.
fn header_field(value: &str, max: usize) -> String {
    let field: String = value
        .chars()
        .map(|c| if c.is_ascii_graphic() { c } else { '_' })
        .take(max)
        .collect();
    if field.is_empty() {
        "-".to_string()
    } else {
        field
    }
}

/// An RFC 3164 TAG: at most 32 characters; anything that would confuse a parser looking for
/// `TAG[PID]:` (space, `:`, `[`, `]`, non-ASCII) becomes `_`.
fn tag_3164(app: &str) -> String {
    let tag: String = app
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && !matches!(c, ':' | '[' | ']') {
                c
            } else {
                '_'
            }
        })
        .take(32)
        .collect();
    if tag.is_empty() {
        "-".to_string()
    } else {
        tag
    }
}

/// PRI = facility * 8 + severity (RFC 5424 6.2.1); facilities above 23 do not exist.
fn pri(facility: u8, severity: Severity) -> u16 {
    u16::from(facility.min(23)) * 8 + u16::from(severity.code())
}

/// Cuts `s` to at most `max` bytes, on a character boundary.
pub(super) fn truncate_utf8(s: &mut String, max: usize) {
    if s.len() <= max {
        return;
    }
    let mut cut = max;
    while !s.is_char_boundary(cut) {
        cut -= 1; // 0 is always a boundary, so this stops
    }
    s.truncate(cut);
}

/// Appends ` MSG` to a header, cutting MSG so the whole message is at most `max_len` bytes.
fn append_message(out: &mut String, text: &str, max_len: usize) {
    let mut msg = sanitize_text(text);
    let room = max_len.saturating_sub(out.len() + 1);
    truncate_utf8(&mut msg, room);
    if !msg.is_empty() {
        out.push(' ');
        out.push_str(&msg);
    }
}

/// An RFC 5424 message `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID - - MSG` (no MSGID, no
/// structured data), at most `max_len` bytes (only MSG is cut). MSG is sent without the
/// UTF-8 BOM: the grammar allows it (MSG-ANY) and many receivers display the BOM as garbage.
pub fn format_5424(rec: &Record, hostname: &str, facility: u8, max_len: usize) -> String {
    let procid = rec.pid.map_or_else(|| "-".to_string(), |p| p.to_string());
    let mut out = format!(
        "<{}>1 {} {} {} {} - -",
        pri(facility, rec.severity),
        UtcTime::from_system_time(rec.timestamp).rfc3339(),
        header_field(hostname, 255),
        header_field(&rec.app, 48),
        procid
    );
    append_message(&mut out, &rec.text, max_len);
    out
}

/// An RFC 3164 message `<PRI>Mmm dd hh:mm:ss HOSTNAME TAG[PID]: MSG`, at most `max_len` bytes
/// (only MSG is cut).
pub fn format_3164(rec: &Record, hostname: &str, facility: u8, max_len: usize) -> String {
    let pid = rec.pid.map(|p| format!("[{p}]")).unwrap_or_default();
    let mut out = format!(
        "<{}>{} {} {}{}:",
        pri(facility, rec.severity),
        UtcTime::from_system_time(rec.timestamp).rfc3164(),
        header_field(hostname, 255),
        tag_3164(&rec.app),
        pid
    );
    append_message(&mut out, &rec.text, max_len);
    out
}

/// RFC 6587 3.4.1 octet-counting framing: `MSG-LEN SP SYSLOG-MSG`.
pub fn frame_octet_counting(msg: &str) -> Vec<u8> {
    let mut frame = format!("{} ", msg.len()).into_bytes();
    frame.extend_from_slice(msg.as_bytes());
    frame
}

/// The text of the notice sent after `lines` lines were lost.
pub fn dropped_notice(lines: u64) -> String {
    let s = if lines == 1 { "" } else { "s" };
    format!("{lines} log line{s} dropped while the log host was unreachable or too slow")
}

pub(super) fn console_dropped_notice(lines: u64) -> String {
    let s = if lines == 1 { "" } else { "s" };
    format!("{lines} log line{s} dropped while the console was blocked")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::record::testing::rec;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn logsink_civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(59), (1970, 3, 1));
        assert_eq!(civil_from_days(10_957), (2000, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29)); // divisible by 400: leap
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(civil_from_days(19_783), (2024, 3, 1));
        assert_eq!(civil_from_days(47_541), (2100, 3, 1)); // 2100 is not a leap year
        assert_eq!(civil_from_days(47_540), (2100, 2, 28));
    }

    #[test]
    fn logsink_utc_times() {
        let t = UtcTime::from_unix(1_709_210_096, 123_456);
        assert_eq!(t.rfc3339(), "2024-02-29T12:34:56.123456Z");
        assert_eq!(t.rfc3164(), "Feb 29 12:34:56");
        assert_eq!(
            UtcTime::from_unix(0, 0).rfc3339(),
            "1970-01-01T00:00:00.000000Z"
        );
        assert_eq!(
            UtcTime::from_unix(2_147_483_647, 0).rfc3339(),
            "2038-01-19T03:14:07.000000Z"
        );
        assert_eq!(
            UtcTime::from_unix(951_782_400, 5).rfc3339(),
            "2000-02-29T00:00:00.000005Z"
        );
        assert_eq!(
            UtcTime::from_unix(1_707_465_903, 0).rfc3164(),
            "Feb  9 08:05:03"
        );
        assert_eq!(
            UtcTime::from_unix(1_735_689_599, 999_999).rfc3339(),
            "2024-12-31T23:59:59.999999Z"
        );
        // A clock before the epoch shows the epoch instead of failing.
        let before = UNIX_EPOCH - Duration::from_secs(10);
        assert_eq!(UtcTime::from_system_time(before).year, 1970);
    }

    #[test]
    fn logsink_format_5424() {
        let r = rec(Severity::Info, "web", Some(42), "hello world");
        assert_eq!(
            format_5424(&r, "vm1", 3, 2048),
            "<30>1 2024-02-29T12:34:56.123456Z vm1 web 42 - - hello world"
        );
        let r = rec(Severity::Error, "", None, "");
        assert_eq!(
            format_5424(&r, "", 16, 2048),
            "<131>1 2024-02-29T12:34:56.123456Z - - - - -"
        );
    }

    #[test]
    fn logsink_format_3164() {
        let r = rec(Severity::Warning, "web", Some(42), "disk low");
        assert_eq!(
            format_3164(&r, "vm1", 3, 1024),
            "<28>Feb 29 12:34:56 vm1 web[42]: disk low"
        );
        let r = rec(Severity::Notice, "my app:x", None, "hi");
        assert_eq!(
            format_3164(&r, "vm1", 1, 1024),
            "<13>Feb 29 12:34:56 vm1 my_app_x: hi"
        );
    }

    #[test]
    fn logsink_header_fields_are_sanitized() {
        let long = "a".repeat(60);
        let r = rec(Severity::Info, &long, Some(1), "x");
        let msg = format_5424(&r, "h o\u{e9}st", 3, 2048);
        assert!(
            msg.contains(&format!(" h_o_st {} 1 - - x", "a".repeat(48))),
            "{msg}"
        );
        let msg = format_3164(&r, "h", 3, 1024);
        assert!(
            msg.contains(&format!(" h {}[1]: x", "a".repeat(32))),
            "{msg}"
        );
    }

    #[test]
    fn logsink_sanitize() {
        assert_eq!(sanitize_text("plain"), "plain");
        assert_eq!(sanitize_text("crlf\r\n"), "crlf");
        assert_eq!(sanitize_text("cr\r"), "cr");
        assert_eq!(sanitize_text("a\tb"), "a b");
        assert_eq!(sanitize_text("\x1b[31mred\x1b[0m"), "?[31mred?[0m");
        assert_eq!(sanitize_text("in\nside"), "in?side");
        assert_eq!(sanitize_text("del\x7f c1\u{85}"), "del? c1?");
        assert_eq!(
            sanitize_text("h\u{e9}llo \u{1F600}"),
            "h\u{e9}llo \u{1F600}"
        );
    }

    #[test]
    fn logsink_messages_are_capped_on_char_boundaries() {
        let r = rec(Severity::Info, "a", None, &"\u{e9}".repeat(3000));
        let msg = format_5424(&r, "h", 3, 2048);
        assert!(msg.len() <= 2048 && msg.len() >= 2046, "{}", msg.len());
        let msg = format_3164(&r, "h", 3, 1024);
        assert!(msg.len() <= 1024 && msg.len() >= 1022, "{}", msg.len());
    }

    #[test]
    fn logsink_framing() {
        assert_eq!(frame_octet_counting("abc"), b"3 abc".to_vec());
        assert_eq!(frame_octet_counting(""), b"0 ".to_vec());
        assert_eq!(
            frame_octet_counting("\u{e9}"),
            "2 \u{e9}".as_bytes().to_vec()
        );
    }
}
