//! iCalendar (RFC 5545) invitations for scheduled meetings: `METHOD:REQUEST` for a new or changed meeting
//! (with a higher `SEQUENCE` each time it changes), `METHOD:CANCEL` when it is called off.
//!
//! Times are written in the meeting's own time zone (`TZID`) with a `VTIMEZONE` built from the tz database,
//! so a weekly series keeps its wall-clock time across daylight-saving changes in every calendar.

use chrono::{DateTime, NaiveDateTime, Offset, TimeDelta, TimeZone, Utc};
use chrono_tz::{OffsetComponents, OffsetName, Tz};

/// What the invitation asks of the calendar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Add or update the event.
    Request,
    /// Remove it.
    Cancel,
}

impl Method {
    /// The `METHOD` value, also the `method` parameter of the mail part.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Request => "REQUEST",
            Self::Cancel => "CANCEL",
        }
    }
}

/// A person on the invitation.
#[derive(Debug, Clone)]
pub struct Person {
    /// Display name, if known.
    pub name: Option<String>,
    /// Email address.
    pub email: String,
}

/// One meeting as a calendar event.
#[derive(Debug, Clone)]
pub struct Event {
    /// Stable across updates: `<meeting id>@<site host>`.
    pub uid: String,
    /// Raised on every mailed change.
    pub sequence: i32,
    /// The title.
    pub summary: String,
    /// The body people read.
    pub description: String,
    /// Where to join.
    pub url: String,
    /// First occurrence.
    pub starts_at: DateTime<Utc>,
    /// End of the first occurrence.
    pub ends_at: DateTime<Utc>,
    /// The time zone the meeting was scheduled in.
    pub time_zone: Tz,
    /// 1 for a single meeting, n for n weekly occurrences.
    pub weekly_occurrences: u32,
    /// Who sent it.
    pub organizer: Person,
    /// Who is invited.
    pub attendees: Vec<Person>,
}

/// The calendar object for `event`, with CRLF line ends and folded lines as RFC 5545 requires.
pub fn render(event: &Event, method: Method, now: DateTime<Utc>) -> String {
    let tz = event.time_zone;
    let mut lines = vec![
        "BEGIN:VCALENDAR".to_owned(),
        "VERSION:2.0".to_owned(),
        "PRODID:-//Convene//Meetings//EN".to_owned(),
        "CALSCALE:GREGORIAN".to_owned(),
        format!("METHOD:{}", method.as_str()),
    ];
    let last_end = event.ends_at + TimeDelta::weeks(i64::from(event.weekly_occurrences.saturating_sub(1)));
    lines.extend(time_zone(tz, event.starts_at, last_end));
    lines.push("BEGIN:VEVENT".to_owned());
    lines.push(format!("UID:{}", text(&event.uid)));
    lines.push(format!("SEQUENCE:{}", event.sequence));
    lines.push(format!("DTSTAMP:{}", now.format("%Y%m%dT%H%M%SZ")));
    lines.push(format!("DTSTART;TZID={}:{}", tz.name(), local(tz, event.starts_at)));
    lines.push(format!("DTEND;TZID={}:{}", tz.name(), local(tz, event.ends_at)));
    if event.weekly_occurrences > 1 {
        lines.push(format!("RRULE:FREQ=WEEKLY;COUNT={}", event.weekly_occurrences));
    }
    lines.push(format!("SUMMARY:{}", text(&event.summary)));
    lines.push(format!("DESCRIPTION:{}", text(&event.description)));
    lines.push(format!("LOCATION:{}", text(&event.url)));
    lines.push(format!("URL:{}", event.url));
    lines.push(format!("ORGANIZER{}:mailto:{}", common_name(&event.organizer), event.organizer.email));
    for attendee in &event.attendees {
        lines.push(format!(
            "ATTENDEE{};ROLE=REQ-PARTICIPANT;PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:{}",
            common_name(attendee),
            attendee.email
        ));
    }
    let status = match method {
        Method::Request => "CONFIRMED",
        Method::Cancel => "CANCELLED",
    };
    lines.push(format!("STATUS:{status}"));
    lines.push("END:VEVENT".to_owned());
    lines.push("END:VCALENDAR".to_owned());
    lines.iter().map(|line| fold(line)).collect()
}

fn local(tz: Tz, at: DateTime<Utc>) -> String {
    at.with_timezone(&tz).format("%Y%m%dT%H%M%S").to_string()
}

fn common_name(person: &Person) -> String {
    // A parameter value is quoted; quotes cannot be escaped inside it, so they are dropped.
    person.name.as_ref().map(|name| format!(";CN=\"{}\"", name.replace(['"', '\r', '\n'], ""))).unwrap_or_default()
}

/// Escapes a TEXT value.
fn text(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => escaped.push_str("\\\\"),
            ';' => escaped.push_str("\\;"),
            ',' => escaped.push_str("\\,"),
            '\n' => escaped.push_str("\\n"),
            '\r' => {}
            _ => escaped.push(c),
        }
    }
    escaped
}

/// Folds a content line at 75 octets (never inside a UTF-8 sequence) and ends it with CRLF.
fn fold(line: &str) -> String {
    let mut folded = String::with_capacity(line.len() + 8);
    let mut width = 0;
    for c in line.chars() {
        if width + c.len_utf8() > 75 {
            folded.push_str("\r\n ");
            width = 1;
        }
        folded.push(c);
        width += c.len_utf8();
    }
    folded.push_str("\r\n");
    folded
}

/// A `VTIMEZONE` describing `tz` from `from` to `until`: the offset in force at the start, then every change
/// in between as its own observance.
fn time_zone(tz: Tz, from: DateTime<Utc>, until: DateTime<Utc>) -> Vec<String> {
    let mut lines = vec!["BEGIN:VTIMEZONE".to_owned(), format!("TZID:{}", tz.name())];
    let first = tz.offset_from_utc_datetime(&from.naive_utc());
    let epoch = NaiveDateTime::default();
    lines.extend(observance(first, first, epoch));
    let mut previous = first;
    let mut day = from;
    while day < until {
        let next = (day + TimeDelta::days(1)).min(until);
        let offset = tz.offset_from_utc_datetime(&next.naive_utc());
        if offset.fix() != previous.fix() {
            let change = first_instant_with(tz, day, next, offset.fix());
            lines.extend(observance(previous, offset, change.naive_utc() + previous.fix()));
            previous = offset;
        }
        day = next;
    }
    lines.push("END:VTIMEZONE".to_owned());
    lines
}

/// The first second in `(before, after]` at which `tz` has `offset`, by bisection.
fn first_instant_with(
    tz: Tz,
    mut before: DateTime<Utc>,
    mut after: DateTime<Utc>,
    offset: chrono::FixedOffset,
) -> DateTime<Utc> {
    while after - before > TimeDelta::seconds(1) {
        let middle = before + (after - before) / 2;
        if tz.offset_from_utc_datetime(&middle.naive_utc()).fix() == offset {
            after = middle;
        } else {
            before = middle;
        }
    }
    after
}

fn observance(from: chrono_tz::TzOffset, to: chrono_tz::TzOffset, starts: NaiveDateTime) -> Vec<String> {
    let kind = if to.dst_offset().is_zero() { "STANDARD" } else { "DAYLIGHT" };
    let mut lines = vec![
        format!("BEGIN:{kind}"),
        format!("DTSTART:{}", starts.format("%Y%m%dT%H%M%S")),
        format!("TZOFFSETFROM:{}", utc_offset(from.fix())),
        format!("TZOFFSETTO:{}", utc_offset(to.fix())),
    ];
    if let Some(abbreviation) = to.abbreviation() {
        lines.push(format!("TZNAME:{}", text(abbreviation)));
    }
    lines.push(format!("END:{kind}"));
    lines
}

/// `+HHMM` or `+HHMMSS` as RFC 5545's UTC-OFFSET.
fn utc_offset(offset: chrono::FixedOffset) -> String {
    let seconds = offset.local_minus_utc();
    let sign = if seconds < 0 { '-' } else { '+' };
    let seconds = seconds.unsigned_abs();
    let (hours, minutes, rest) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
    if rest == 0 { format!("{sign}{hours:02}{minutes:02}") } else { format!("{sign}{hours:02}{minutes:02}{rest:02}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(tz: Tz, weeks: u32) -> Event {
        let starts_at = tz.with_ymd_and_hms(2026, 3, 23, 10, 0, 0).single().expect("a valid local time");
        Event {
            uid: "m1@example.com".to_owned(),
            sequence: 2,
            summary: "Plan; review, and \\ more".to_owned(),
            description: "Line one\nLine two".to_owned(),
            url: "https://example.com/join/abc".to_owned(),
            starts_at: starts_at.with_timezone(&Utc),
            ends_at: (starts_at + TimeDelta::hours(1)).with_timezone(&Utc),
            time_zone: tz,
            weekly_occurrences: weeks,
            organizer: Person { name: Some("Ann \"A\" Lee".to_owned()), email: "ann@example.com".to_owned() },
            attendees: vec![Person { name: None, email: "bob@example.com".to_owned() }],
        }
    }

    #[test]
    fn a_series_across_a_clock_change_lists_the_change() {
        let ics = render(&event(chrono_tz::Europe::Berlin, 3), Method::Request, Utc::now());
        assert!(ics.contains("DTSTART;TZID=Europe/Berlin:20260323T100000\r\n"));
        assert!(ics.contains("RRULE:FREQ=WEEKLY;COUNT=3\r\n"));
        // Berlin moves to summer time at 01:00 UTC on 29 March 2026, 02:00 local.
        assert!(ics.contains("BEGIN:DAYLIGHT\r\nDTSTART:20260329T020000\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200"));
        assert!(ics.contains("SUMMARY:Plan\\; review\\, and \\\\ more\r\n"));
        assert!(ics.contains("DESCRIPTION:Line one\\nLine two\r\n"));
        assert!(ics.contains("ORGANIZER;CN=\"Ann A Lee\":mailto:ann@example.com\r\n"));
    }

    #[test]
    fn lines_fold_at_75_octets_without_splitting_characters() {
        let mut long = event(chrono_tz::UTC, 1);
        long.summary = "é".repeat(100);
        let ics = render(&long, Method::Cancel, Utc::now());
        for line in ics.split("\r\n") {
            assert!(line.len() <= 75, "{line:?} is {} octets", line.len());
        }
        assert!(ics.contains("METHOD:CANCEL\r\n") && ics.contains("STATUS:CANCELLED\r\n"));
        assert!(!ics.contains("RRULE"), "a single meeting has no recurrence");
    }

    #[test]
    fn offsets_with_seconds_and_negative_offsets_are_written_in_full() {
        assert_eq!(utc_offset(chrono::FixedOffset::west_opt(5 * 3600).expect("valid")), "-0500");
        assert_eq!(utc_offset(chrono::FixedOffset::east_opt(3600 + 1800 + 5).expect("valid")), "+013005");
    }
}
