//! What a meeting request says about time and people, checked: wall-clock times in a named zone become
//! UTC instants (refusing times a clock change skips), weekly occurrences keep the wall-clock time, and
//! titles and invitee lists are bounded. Pure functions of the input, tested without a database.

use chrono::{DateTime, NaiveDateTime, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;
use convene_domain::{EmailAddress, RoomSettings};
use serde::Deserialize;

use crate::entities::meeting;

/// Bounds on what one meeting may ask for.
const MAX_OCCURRENCES: u32 = 52;
const MAX_INVITEES: usize = 100;
const SHORTEST: TimeDelta = TimeDelta::minutes(5);
const LONGEST: TimeDelta = TimeDelta::hours(24);
/// How far ahead a meeting may start; also keeps week arithmetic far from chrono's limits.
const FUTURE_START: TimeDelta = TimeDelta::days(5 * 366);

/// A meeting as submitted by the form or the API; times are wall-clock times in `time_zone`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MeetingInput {
    /// Title.
    pub title: String,
    /// Room name; generated when absent. Fixed once the meeting exists.
    #[serde(default)]
    pub room: Option<String>,
    /// `YYYY-MM-DDTHH:MM[:SS]`, local to `time_zone`.
    pub starts_at: String,
    /// Same form as `starts_at`.
    pub ends_at: String,
    /// IANA name, e.g. `Europe/Berlin`.
    pub time_zone: String,
    /// 1 (default) for a single meeting, up to 52 weekly occurrences.
    #[serde(default = "one")]
    pub weekly_occurrences: u32,
    /// Addresses to invite.
    #[serde(default)]
    pub invitees: Vec<String>,
    /// The room's settings.
    #[serde(flatten)]
    pub settings: RoomSettings,
}

fn one() -> u32 {
    1
}

/// A field of a meeting request that cannot be used, as the form and the API name it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct InvalidField {
    /// The field.
    pub field: &'static str,
    /// What is wrong with it.
    pub message: String,
}

/// A validated schedule.
#[derive(Debug, Clone)]
pub(super) struct Schedule {
    pub(super) starts_at: DateTime<Utc>,
    pub(super) ends_at: DateTime<Utc>,
    pub(super) time_zone: Tz,
    pub(super) weekly_occurrences: u32,
}

impl Schedule {
    pub(super) fn parse(input: &MeetingInput) -> Result<Self, InvalidField> {
        let time_zone: Tz = input.time_zone.trim().parse().map_err(|_| InvalidField {
            field: "time_zone",
            message: format!("`{}` is not a known time zone (use a name like Europe/Berlin)", echoed(&input.time_zone)),
        })?;
        let starts_at = local_time("starts_at", &input.starts_at, time_zone)?;
        if starts_at > Utc::now() + FUTURE_START {
            return Err(InvalidField { field: "starts_at", message: "at most 5 years ahead".to_owned() });
        }
        let ends_at = local_time("ends_at", &input.ends_at, time_zone)?;
        let length = ends_at - starts_at;
        if length < SHORTEST {
            let message = "must be at least 5 minutes after the start".to_owned();
            return Err(InvalidField { field: "ends_at", message });
        }
        if length > LONGEST {
            return Err(InvalidField { field: "ends_at", message: "at most 24 hours after the start".into() });
        }
        if !(1..=MAX_OCCURRENCES).contains(&input.weekly_occurrences) {
            let message = format!("between 1 and {MAX_OCCURRENCES}");
            return Err(InvalidField { field: "weekly_occurrences", message });
        }
        Ok(Self { starts_at, ends_at, time_zone, weekly_occurrences: input.weekly_occurrences })
    }

    pub(super) fn of(row: &meeting::Model) -> Self {
        Self {
            starts_at: row.starts_at,
            ends_at: row.ends_at,
            time_zone: row.time_zone.parse().unwrap_or(Tz::UTC),
            weekly_occurrences: u32::try_from(row.weekly_occurrences).unwrap_or(1),
        }
    }

    /// Every occurrence, at the same wall-clock time each week.
    pub(super) fn occurrences(&self) -> impl Iterator<Item = (DateTime<Utc>, DateTime<Utc>)> + '_ {
        let local = self.starts_at.with_timezone(&self.time_zone).naive_local();
        let length = self.ends_at - self.starts_at;
        (0..self.weekly_occurrences).map(move |week| {
            let start = resolve(self.time_zone, local + TimeDelta::weeks(i64::from(week)))
                .unwrap_or(self.starts_at + TimeDelta::weeks(i64::from(week)));
            (start, start + length)
        })
    }

    pub(super) fn last_ends_at(&self) -> DateTime<Utc> {
        self.occurrences().last().map_or(self.ends_at, |(_, end)| end)
    }

    /// The occurrence going on or coming next at `now`; none once the last is over.
    pub(super) fn current(&self, now: DateTime<Utc>) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        self.occurrences().find(|(_, end)| *end > now)
    }

    pub(super) fn describe(&self, (start, end): (DateTime<Utc>, DateTime<Utc>)) -> String {
        let (start, end) = (start.with_timezone(&self.time_zone), end.with_timezone(&self.time_zone));
        let end_format = if start.date_naive() == end.date_naive() { "%H:%M" } else { "%a %-d %b %Y, %H:%M" };
        format!("{}–{} ({})", start.format("%a %-d %b %Y, %H:%M"), end.format(end_format), self.time_zone.name())
    }

    pub(super) fn recurrence(&self) -> Option<String> {
        (self.weekly_occurrences > 1).then(|| format!("Weekly, {} times", self.weekly_occurrences))
    }
}

/// A wall-clock time in `time_zone`, refusing times that do not exist there (skipped by a clock change).
fn local_time(field: &'static str, text: &str, time_zone: Tz) -> Result<DateTime<Utc>, InvalidField> {
    let text = text.trim();
    if text.is_empty() {
        let which = if field == "ends_at" { "end" } else { "start" };
        return Err(InvalidField { field, message: format!("enter the {which} date and time") });
    }
    let naive = NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M")
        .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S"))
        .map_err(|_| InvalidField {
            field,
            message: format!("`{}` is not a time like 2026-12-01T09:30", echoed(text)),
        })?;
    resolve(time_zone, naive).ok_or_else(|| InvalidField {
        field,
        message: format!("{text} does not exist in {} (the clocks change then)", time_zone.name()),
    })
}

/// What of a refused value goes back into the message: enough to recognise it, never a whole paste.
fn echoed(text: &str) -> String {
    const SHOWN: usize = 40;
    let mut shown: String = text.trim().chars().take(SHOWN).collect();
    if text.trim().chars().count() > SHOWN {
        shown.push('…');
    }
    shown
}

/// The instant of a wall-clock time; the earlier one when a clock change repeats it.
fn resolve(time_zone: Tz, naive: NaiveDateTime) -> Option<DateTime<Utc>> {
    time_zone.from_local_datetime(&naive).earliest().map(|at| at.with_timezone(&Utc))
}

pub(super) fn check_title(title: &str) -> Result<String, InvalidField> {
    let title = title.trim();
    // Control characters (line breaks among them) have no place in a mail subject or a calendar line.
    if title.is_empty() || title.chars().count() > 200 || title.chars().any(char::is_control) {
        return Err(InvalidField { field: "title", message: "1 to 200 characters on one line".to_owned() });
    }
    Ok(title.to_owned())
}

pub(super) fn parse_invitees(raw: &[String]) -> Result<Vec<EmailAddress>, InvalidField> {
    let mut invitees: Vec<EmailAddress> = Vec::new();
    for text in raw.iter().map(|text| text.trim()).filter(|text| !text.is_empty()) {
        let address = EmailAddress::parse(text)
            .map_err(|_| InvalidField { field: "invitees", message: format!("`{text}` is not an email address") })?;
        if !invitees.contains(&address) {
            invitees.push(address);
        }
    }
    if invitees.len() > MAX_INVITEES {
        return Err(InvalidField { field: "invitees", message: format!("at most {MAX_INVITEES} addresses") });
    }
    Ok(invitees)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(starts_at: &str, ends_at: &str, time_zone: &str, weeks: u32) -> MeetingInput {
        MeetingInput {
            title: "Weekly".to_owned(),
            room: None,
            starts_at: starts_at.to_owned(),
            ends_at: ends_at.to_owned(),
            time_zone: time_zone.to_owned(),
            weekly_occurrences: weeks,
            invitees: Vec::new(),
            settings: RoomSettings::default(),
        }
    }

    fn field_of(result: Result<Schedule, InvalidField>) -> &'static str {
        match result {
            Err(InvalidField { field, .. }) => field,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn weekly_occurrences_keep_the_wall_clock_time_across_a_clock_change() {
        let schedule =
            Schedule::parse(&input("2026-03-23T10:00", "2026-03-23T11:00", "Europe/Berlin", 2)).expect("valid");
        let occurrences: Vec<_> = schedule.occurrences().collect();
        assert_eq!(occurrences[0].0.to_rfc3339(), "2026-03-23T09:00:00+00:00");
        assert_eq!(occurrences[1].0.to_rfc3339(), "2026-03-30T08:00:00+00:00", "10:00 summer time");
        assert_eq!(schedule.last_ends_at().to_rfc3339(), "2026-03-30T09:00:00+00:00");
    }

    #[test]
    fn bad_schedules_name_their_field() {
        assert_eq!(field_of(Schedule::parse(&input("2026-12-01T10:00", "2026-12-01T09:00", "UTC", 1))), "ends_at");
        assert_eq!(field_of(Schedule::parse(&input("2026-12-01T10:00", "2026-12-03T10:00", "UTC", 1))), "ends_at");
        assert_eq!(
            field_of(Schedule::parse(&input("2026-12-01T10:00", "2026-12-01T11:00", "Mars/Olympus", 1))),
            "time_zone"
        );
        assert_eq!(field_of(Schedule::parse(&input("tomorrow", "2026-12-01T11:00", "UTC", 1))), "starts_at");
        let empty_end = Schedule::parse(&input("2026-12-01T10:00", " ", "UTC", 1)).unwrap_err();
        assert_eq!((empty_end.field, empty_end.message.as_str()), ("ends_at", "enter the end date and time"));
        let pasted = Schedule::parse(&input(&"9".repeat(5_000), "2026-12-01T11:00", "UTC", 1)).unwrap_err();
        assert!(pasted.message.len() < 120, "a refusal echoes a bounded part: {}", pasted.message);
        let far = input("262000-12-01T10:00", "262000-12-01T11:00", "UTC", 52);
        assert_eq!(field_of(Schedule::parse(&far)), "starts_at", "refused before any week arithmetic");
        assert_eq!(
            field_of(Schedule::parse(&input("2026-12-01T10:00", "2026-12-01T11:00", "UTC", 0))),
            "weekly_occurrences"
        );
        assert_eq!(
            field_of(Schedule::parse(&input("2026-12-01T10:00", "2026-12-01T11:00", "UTC", 53))),
            "weekly_occurrences"
        );
        // 02:30 on 29 March 2026 is skipped in Berlin.
        assert_eq!(
            field_of(Schedule::parse(&input("2026-03-29T02:30", "2026-03-29T04:00", "Europe/Berlin", 1))),
            "starts_at"
        );
    }

    #[test]
    fn invitees_are_checked_and_deduplicated() {
        let parsed = parse_invitees(&["Ann@Example.com".into(), " ann@example.com ".into(), String::new()]);
        assert_eq!(parsed.expect("valid").len(), 1);
        assert!(matches!(parse_invitees(&["not an address".into()]), Err(InvalidField { field: "invitees", .. })));
    }
}
