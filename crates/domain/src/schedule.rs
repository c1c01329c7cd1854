//! Schedules: when periodic jobs are due.
//!
//! A [`CronSchedule`] is a cron expression in an IANA time zone, parsed and checked once.
//! Expressions have the five standard fields (minute, hour, day of month, month, day of week),
//! or, as an extension, six with a leading seconds field. Due times are computed in the
//! schedule's zone with daylight-saving changes handled as Vixie cron does: a fixed time that a
//! spring-forward skips runs once, right after the gap; a fixed time that a fall-back repeats
//! runs once, at its first occurrence; wildcard and step fields follow real time (every 15
//! minutes stays every 15 minutes through either change). The computation is
//! [croner](https://docs.rs/croner)'s; time zones are `chrono-tz`'s copy of the IANA database.

use std::str::FromStr as _;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

use crate::ValidationErrors;

/// Longest cron expression accepted, in bytes.
pub const MAX_CRON_LEN: usize = 200;
/// Longest schedule name accepted, in characters.
pub const MAX_NAME_CHARS: usize = 200;
/// The zone of a schedule that names none.
pub const DEFAULT_TIMEZONE: &str = "UTC";

/// A checked cron expression and time zone.
#[derive(Debug, Clone)]
pub struct CronSchedule {
    expression: String,
    cron: Cron,
    zone: Tz,
}

impl CronSchedule {
    /// Parses `cron` (errors on `cron`) in `timezone` (an IANA name such as `Europe/Berlin`,
    /// `UTC` when `None`; errors on `timezone`). An expression that never matches (such as
    /// 30 February) is refused too.
    pub fn parse(cron: &str, timezone: Option<&str>) -> Result<Self, ValidationErrors> {
        let mut errors = ValidationErrors::new();
        let zone_name = timezone.map_or(DEFAULT_TIMEZONE, str::trim);
        let zone = match Tz::from_str(zone_name) {
            Ok(zone) => Some(zone),
            Err(_) => {
                errors.add(
                    "timezone",
                    "must be an IANA time zone name such as UTC, Europe/Berlin or America/New_York",
                );
                None
            }
        };
        let expression = cron.split_whitespace().collect::<Vec<_>>().join(" ");
        let parsed = parse_cron(&expression).map_err(|message| errors.add("cron", message));
        let (Ok(cron), Some(zone)) = (parsed, zone) else {
            return Err(errors);
        };
        let schedule = Self {
            expression,
            cron,
            zone,
        };
        if schedule.next_after(Utc::now()).is_none() {
            return Err(ValidationErrors::field(
                "cron",
                "never matches a real date (such as 30 February)",
            ));
        }
        Ok(schedule)
    }

    /// The expression, whitespace normalised.
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// The IANA name of the zone.
    pub fn timezone(&self) -> &'static str {
        self.zone.name()
    }

    /// The first due time strictly after `after`; `None` when there is none (before year 5000).
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = after.with_timezone(&self.zone);
        self.cron
            .find_next_occurrence(&local, false)
            .ok()
            .map(|next| next.with_timezone(&Utc))
    }
}

/// Parses a five-field expression, or six with leading seconds; the message says what is wrong.
fn parse_cron(expression: &str) -> Result<Cron, String> {
    if expression.is_empty() {
        return Err("is required: a cron expression such as `*/5 * * * *`".to_owned());
    }
    if expression.len() > MAX_CRON_LEN {
        return Err(format!("must be at most {MAX_CRON_LEN} characters"));
    }
    let fields = expression.split(' ').count();
    if !expression.starts_with('@') && !(5..=6).contains(&fields) {
        return Err(format!(
            "must have five fields (minute hour day-of-month month day-of-week), or six with a \
             leading seconds field; found {fields}"
        ));
    }
    CronParser::builder()
        .seconds(Seconds::Optional)
        .year(Year::Disallowed)
        .build()
        .parse(expression)
        .map_err(|error| format!("is not a valid cron expression: {error}"))
}

/// Checks a schedule's name: 1 to [`MAX_NAME_CHARS`] characters after trimming, no control
/// characters. Returns it trimmed.
pub fn parse_name(raw: &str) -> Result<String, ValidationErrors> {
    let name = raw.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(ValidationErrors::field(
            "name",
            format!("must be 1 to {MAX_NAME_CHARS} characters"),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(ValidationErrors::field(
            "name",
            "must not contain control characters",
        ));
    }
    Ok(name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone as _;

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap_or_else(|_| panic!("bad test time {s}"))
    }

    fn runs(schedule: &CronSchedule, from: &str, n: usize) -> Vec<DateTime<Utc>> {
        let mut at = utc(from);
        let mut out = Vec::new();
        for _ in 0..n {
            match schedule.next_after(at) {
                Some(next) => {
                    out.push(next);
                    at = next;
                }
                None => break,
            }
        }
        out
    }

    fn schedule(cron: &str, zone: &str) -> CronSchedule {
        CronSchedule::parse(cron, Some(zone)).unwrap_or_else(|e| panic!("{cron}: {e:?}"))
    }

    #[test]
    fn five_fields_in_utc_by_default() {
        let s = CronSchedule::parse("  */15  * * * * ", None).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(s.expression(), "*/15 * * * *");
        assert_eq!(s.timezone(), "UTC");
        assert_eq!(
            runs(&s, "2030-01-01T10:07:00Z", 2),
            [utc("2030-01-01T10:15:00Z"), utc("2030-01-01T10:30:00Z")]
        );
        // Strictly after: a due time is never returned again.
        assert_eq!(
            s.next_after(utc("2030-01-01T10:15:00Z")),
            Some(utc("2030-01-01T10:30:00Z"))
        );
    }

    #[test]
    fn a_leading_seconds_field_gives_second_resolution() {
        let s = schedule("* * * * * *", "UTC");
        assert_eq!(
            runs(&s, "2030-01-01T10:00:00.500Z", 3),
            [
                utc("2030-01-01T10:00:01Z"),
                utc("2030-01-01T10:00:02Z"),
                utc("2030-01-01T10:00:03Z")
            ]
        );
    }

    #[test]
    fn the_zone_decides_the_wall_clock() {
        let s = schedule("0 9 * * *", "Asia/Tokyo");
        assert_eq!(
            s.next_after(utc("2030-01-01T00:00:00Z")),
            Some(utc("2030-01-02T00:00:00Z"))
        );
    }

    #[test]
    fn spring_forward_neither_skips_nor_doubles() {
        // New York, 2030-03-10: 02:00 EST jumps to 03:00 EDT.
        let daily = schedule("30 2 * * *", "America/New_York");
        assert_eq!(
            runs(&daily, "2030-03-08T12:00:00Z", 3),
            [
                utc("2030-03-09T07:30:00Z"), // 02:30 EST
                utc("2030-03-10T07:00:00Z"), // 02:30 does not exist: once, at 03:00 EDT
                utc("2030-03-11T06:30:00Z"), // 02:30 EDT
            ]
        );
        // An hourly job keeps firing every real hour across the gap.
        let hourly = schedule("0 * * * *", "America/New_York");
        assert_eq!(
            runs(&hourly, "2030-03-10T05:30:00Z", 3),
            [
                utc("2030-03-10T06:00:00Z"), // 01:00 EST
                utc("2030-03-10T07:00:00Z"), // 03:00 EDT
                utc("2030-03-10T08:00:00Z"), // 04:00 EDT
            ]
        );
    }

    #[test]
    fn fall_back_neither_skips_nor_doubles() {
        // Berlin, 2030-10-27: 03:00 CEST goes back to 02:00 CET; 02:30 happens twice.
        let daily = schedule("30 2 * * *", "Europe/Berlin");
        assert_eq!(
            runs(&daily, "2030-10-26T12:00:00Z", 2),
            [
                utc("2030-10-27T00:30:00Z"), // 02:30 CEST, the first 02:30 only
                utc("2030-10-28T01:30:00Z"), // 02:30 CET the next day
            ]
        );
        // Every 30 minutes stays every 30 real minutes through the repeated hour.
        let half_hourly = schedule("*/30 * * * *", "Europe/Berlin");
        assert_eq!(
            runs(&half_hourly, "2030-10-26T23:45:00Z", 5),
            [
                utc("2030-10-27T00:00:00Z"), // 02:00 CEST
                utc("2030-10-27T00:30:00Z"), // 02:30 CEST
                utc("2030-10-27T01:00:00Z"), // 02:00 CET
                utc("2030-10-27T01:30:00Z"), // 02:30 CET
                utc("2030-10-27T02:00:00Z"), // 03:00 CET
            ]
        );
        // New York too (2030-11-03, 02:00 EDT back to 01:00 EST): 01:30 once.
        let ny = schedule("30 1 * * *", "America/New_York");
        let got = runs(&ny, "2030-11-02T12:00:00Z", 2);
        assert_eq!(
            got,
            [utc("2030-11-03T05:30:00Z"), utc("2030-11-04T06:30:00Z")]
        );
        let local = chrono_tz::America::New_York
            .with_ymd_and_hms(2030, 11, 3, 1, 30, 0)
            .earliest()
            .map(|t| t.with_timezone(&Utc));
        assert_eq!(local, Some(got[0]));
    }

    #[test]
    fn bad_expressions_and_zones_name_their_field() {
        for bad in [
            "",
            "* * * *",
            "61 * * * *",
            "* * * * * * *",
            "nope",
            "* * 30 2 *",
        ] {
            let errors = CronSchedule::parse(bad, None).err();
            assert!(
                errors.as_ref().is_some_and(|e| e.0.contains_key("cron")),
                "{bad:?}: {errors:?}"
            );
        }
        let errors = CronSchedule::parse("* * * * *", Some("Mars/Olympus")).err();
        assert!(errors.is_some_and(|e| e.0.contains_key("timezone") && !e.0.contains_key("cron")));
        let both = CronSchedule::parse("x", Some("Nowhere")).err();
        assert!(both.is_some_and(|e| e.0.len() == 2));
        assert!(CronSchedule::parse(&"1,".repeat(150), None).is_err());
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(parse_name("  nightly  ").ok().as_deref(), Some("nightly"));
        assert!(parse_name("   ").is_err());
        assert!(parse_name(&"x".repeat(MAX_NAME_CHARS + 1)).is_err());
        assert!(parse_name("a\u{7}b").is_err());
    }
}
