//! ISO weeks in the review time zone: what "a week" of decisions is.

use std::fmt;

use chrono::{DateTime, Datelike as _, NaiveDate, Utc, Weekday};
use serde::{Serialize, Serializer};

/// An ISO 8601 week (Monday to Sunday), e.g. `2026-W48`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IsoWeek {
    /// Its Monday.
    monday: NaiveDate,
}

impl IsoWeek {
    /// The week `day` falls in.
    pub fn of(day: NaiveDate) -> Self {
        let back = i64::from(day.weekday().num_days_from_monday());
        Self {
            monday: day - chrono::Duration::days(back),
        }
    }

    /// Parses `2026-W48` (also `2026W48`, `2026-w48`).
    ///
    /// # Errors
    /// A message naming the expected form.
    pub fn parse(s: &str) -> Result<Self, String> {
        let t = s.trim().to_ascii_uppercase();
        let bad = || format!("{s:?} is not an ISO week like 2026-W48");
        let (y, w) = t.split_once('W').ok_or_else(bad)?;
        let year: i32 = y.trim_end_matches('-').parse().map_err(|_| bad())?;
        let week: u32 = w.parse().map_err(|_| bad())?;
        NaiveDate::from_isoywd_opt(year, week, Weekday::Mon)
            .map(|monday| Self { monday })
            .ok_or_else(bad)
    }

    /// The last week that has ended at `now` in `tz` (the one before the current week).
    pub fn last_full(now: DateTime<Utc>, tz: chrono_tz::Tz) -> Self {
        Self::of(now.with_timezone(&tz).date_naive()).prev()
    }

    /// The week before.
    #[must_use]
    pub fn prev(self) -> Self {
        Self {
            monday: self.monday - chrono::Duration::days(7),
        }
    }

    /// The week after.
    #[must_use]
    pub fn next(self) -> Self {
        Self {
            monday: self.monday + chrono::Duration::days(7),
        }
    }

    /// Its Monday.
    pub fn monday(self) -> NaiveDate {
        self.monday
    }

    /// Its seven days, Monday first.
    pub fn days(self) -> impl Iterator<Item = NaiveDate> {
        (0..7).map(move |i| self.monday + chrono::Duration::days(i))
    }

    /// `[start, end)` in UTC: Monday 00:00 to the next Monday 00:00 in `tz`.
    pub fn bounds(self, tz: chrono_tz::Tz) -> (DateTime<Utc>, DateTime<Utc>) {
        (
            crate::review::day_bounds(self.monday, tz).0,
            crate::review::day_bounds(self.next().monday, tz).0,
        )
    }

    /// The `n` weeks ending with `self`, oldest first.
    pub fn ending_with(self, n: usize) -> Vec<Self> {
        let mut out = Vec::with_capacity(n);
        let mut w = self;
        for _ in 0..n {
            out.push(w);
            w = w.prev();
        }
        out.reverse();
        out
    }
}

impl fmt::Display for IsoWeek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let iso = self.monday.iso_week();
        write!(f, "{}-W{:02}", iso.year(), iso.week())
    }
}

impl Serialize for IsoWeek {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;

    use super::*;

    #[test]
    fn weeks_parse_print_and_bound() {
        let w = IsoWeek::parse("2026-W48").unwrap();
        assert_eq!(w.monday(), NaiveDate::from_ymd_opt(2026, 11, 23).unwrap());
        assert_eq!(w.to_string(), "2026-W48");
        assert_eq!(IsoWeek::parse("2026w48").unwrap(), w);
        assert!(IsoWeek::parse("2026-W54").is_err());
        assert!(IsoWeek::parse("last week").is_err());
        // 2027-01-01 is a Friday of 2026-W53.
        let jan1 = NaiveDate::from_ymd_opt(2027, 1, 1).unwrap();
        assert_eq!(IsoWeek::of(jan1).to_string(), "2026-W53");
        let now = Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap();
        assert_eq!(IsoWeek::last_full(now, chrono_tz::UTC), w);
        let (from, to) = w.bounds(chrono_tz::Europe::Berlin);
        assert_eq!(from.to_rfc3339(), "2026-11-22T23:00:00+00:00");
        assert_eq!(to.to_rfc3339(), "2026-11-29T23:00:00+00:00");
        let weeks = w.ending_with(3);
        assert_eq!(weeks[0].to_string(), "2026-W46");
        assert_eq!(weeks[2], w);
    }
}
