//! What an insights request asks for: which runs (the executions' filter), grouped how, over
//! which range, in which buckets of which calendar.

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{Span, Timestamp, ToSpan, Zoned};

use super::facts::Millis;
use crate::query::{ExecutionFilter, FilterError, Scope};

/// What runs are grouped by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum GroupKey {
    Pipeline,
    Application,
    Environment,
    Namespace,
    Trigger,
}

impl GroupKey {
    pub const ALL: [GroupKey; 5] =
        [GroupKey::Pipeline, GroupKey::Application, GroupKey::Environment, GroupKey::Namespace, GroupKey::Trigger];

    pub fn as_str(self) -> &'static str {
        match self {
            GroupKey::Pipeline => "pipeline",
            GroupKey::Application => "application",
            GroupKey::Environment => "environment",
            GroupKey::Namespace => "namespace",
            GroupKey::Trigger => "trigger",
        }
    }

    pub fn parse(s: &str) -> Option<GroupKey> {
        GroupKey::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// How the range is cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Interval {
    Day,
    /// ISO weeks: Monday to Monday.
    Week,
    Month,
    /// The whole range, one bucket.
    Whole,
}

impl Interval {
    pub const ALL: [Interval; 4] = [Interval::Day, Interval::Week, Interval::Month, Interval::Whole];

    pub fn as_str(self) -> &'static str {
        match self {
            Interval::Day => "day",
            Interval::Week => "week",
            Interval::Month => "month",
            Interval::Whole => "whole",
        }
    }

    pub fn parse(s: &str) -> Option<Interval> {
        Interval::ALL.into_iter().find(|i| i.as_str() == s)
    }

    /// The start of the bucket holding `at`.
    fn floor(self, at: &Zoned) -> Result<Zoned, jiff::Error> {
        if self == Interval::Whole {
            return Ok(at.clone());
        }
        let day = at.start_of_day()?;
        match self {
            Interval::Day | Interval::Whole => Ok(day),
            Interval::Week => {
                let back = i64::from(day.weekday().to_monday_zero_offset());
                day.checked_sub(back.days())?.start_of_day()
            }
            Interval::Month => at.first_of_month()?.start_of_day(),
        }
    }

    fn step(self) -> Span {
        match self {
            Interval::Day | Interval::Whole => 1.day(),
            Interval::Week => 1.week(),
            Interval::Month => 1.month(),
        }
    }
}

/// The most buckets one answer has: two years of days.
pub const MAX_BUCKETS: usize = 800;
/// The longest range of any interval, in days: ten years.
pub const MAX_RANGE_DAYS: i64 = 3660;
/// The range when `from` is not given.
pub const DEFAULT_RANGE: &str = "90d";

/// One insights request.
#[derive(Clone, Debug)]
pub struct InsightsRequest {
    pub filter: ExecutionFilter,
    pub group_by: Vec<GroupKey>,
    pub interval: Interval,
    pub tz: TimeZone,
    pub tz_name: String,
    pub buckets: Buckets,
}

/// A range's bucket edges: bucket `i` is `[edges[i], edges[i + 1])`, and nothing at or after
/// `to` counts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Buckets {
    pub edges: Vec<Millis>,
    pub to: Millis,
}

impl Buckets {
    /// The edges of `interval` over `[from, to)` in `tz`: `from` moved back to its bucket's start.
    pub fn new(interval: Interval, from: Timestamp, to: Timestamp, tz: &TimeZone) -> Result<Buckets, String> {
        Buckets::limited(interval, from, to, tz, MAX_BUCKETS)
    }

    /// The days of this range in `tz`, however many (the range is at most `MAX_RANGE_DAYS`):
    /// what deployment days are counted by.
    pub fn days(&self, tz: &TimeZone) -> Buckets {
        let at = |ms| Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH);
        let limit = usize::try_from(MAX_RANGE_DAYS).unwrap_or(usize::MAX) + 2;
        let days = Buckets::limited(Interval::Day, at(self.from()), at(self.to), tz, limit);
        days.unwrap_or_else(|_| Buckets { edges: vec![self.from(), self.to], to: self.to })
    }

    fn limited(
        interval: Interval,
        from: Timestamp,
        to: Timestamp,
        tz: &TimeZone,
        limit: usize,
    ) -> Result<Buckets, String> {
        let start = interval.floor(&from.to_zoned(tz.clone())).map_err(|e| e.to_string())?;
        let mut edges = vec![start.timestamp().as_millisecond()];
        let mut edge = start.clone();
        while edge.timestamp() < to {
            if edges.len() > limit {
                let why = format!(
                    "more than {MAX_BUCKETS} {}s: ask for a shorter range or a longer interval",
                    interval.as_str()
                );
                return Err(why);
            }
            edge = if interval == Interval::Whole {
                to.to_zoned(tz.clone())
            } else {
                // From the first edge, not the last: a month from the 31st is not a month from the 28th.
                let steps = i64::try_from(edges.len()).unwrap_or(i64::MAX);
                let next = start.checked_add(interval.step().checked_mul(steps).map_err(|e| e.to_string())?);
                next.and_then(|z| interval.floor(&z)).map_err(|e| e.to_string())?
            };
            edges.push(edge.timestamp().as_millisecond());
        }
        if edges.len() == 1 {
            edges.push(to.as_millisecond());
        }
        Ok(Buckets { edges, to: to.as_millisecond() })
    }

    pub fn from(&self) -> Millis {
        self.edges[0]
    }

    pub fn len(&self) -> usize {
        self.edges.len() - 1
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bucket `at` falls in, if it is in the range.
    pub fn of(&self, at: Millis) -> Option<usize> {
        if at < self.from() || at >= self.to {
            return None;
        }
        Some(self.edges.partition_point(|edge| *edge <= at) - 1)
    }
}

impl InsightsRequest {
    /// The parameters an insights request takes besides the executions' filter.
    pub const PARAMETERS: [&'static str; 5] = ["groupBy", "interval", "from", "to", "tz"];

    /// The request `parameter` reads, at `now`.
    pub fn from_parameters<'p>(
        namespace: Option<String>,
        parameter: impl Fn(&str) -> Option<&'p str> + Copy,
        scope: Scope,
        now: Timestamp,
    ) -> Result<Self, FilterError> {
        let text = |name: &str| parameter(name).filter(|v| !v.is_empty());
        let invalid =
            |name: &'static str, value: &str, reason: String| FilterError { name, value: value.to_owned(), reason };
        let filter = ExecutionFilter::from_parameters(namespace, parameter, scope)?;
        let group_by =
            text("groupBy").map_or(Ok(Vec::new()), |raw| group_keys(raw).map_err(|r| invalid("groupBy", raw, r)))?;
        let interval = text("interval").map_or(Ok(Interval::Week), |raw| {
            Interval::parse(raw).ok_or_else(|| invalid("interval", raw, "expected day, week, month or whole".into()))
        })?;
        let tz_name = text("tz").unwrap_or("UTC");
        let tz = TimeZone::get(tz_name).map_err(|_| {
            invalid("tz", tz_name, "expected an IANA time zone name, as in Europe/Berlin or UTC".into())
        })?;
        let at = |name: &'static str, default: &str| {
            let raw = text(name).unwrap_or(default);
            point(raw, now, &tz).map_err(|reason| invalid(name, raw, reason))
        };
        let (from, to) = (at("from", DEFAULT_RANGE)?, at("to", "0s")?);
        if from >= to {
            return Err(invalid("from", text("from").unwrap_or(DEFAULT_RANGE), format!("must come before to ({to})")));
        }
        if to.duration_since(from).as_secs() > MAX_RANGE_DAYS * 86_400 {
            let reason = format!("the range is longer than the limit of {MAX_RANGE_DAYS} days");
            return Err(invalid("from", text("from").unwrap_or(DEFAULT_RANGE), reason));
        }
        let buckets = Buckets::new(interval, from, to, &tz).map_err(|r| invalid("interval", interval.as_str(), r))?;
        Ok(InsightsRequest { filter, group_by, interval, tz, tz_name: tz_name.to_owned(), buckets })
    }
}

/// `pipeline,environment`: known keys, each once.
fn group_keys(raw: &str) -> Result<Vec<GroupKey>, String> {
    let mut keys = Vec::new();
    for name in raw.split(',').map(str::trim) {
        let known = || GroupKey::ALL.map(GroupKey::as_str).join(", ");
        let key = GroupKey::parse(name).ok_or_else(|| format!("{name:?} is not a group key ({})", known()))?;
        if keys.contains(&key) {
            return Err(format!("{name:?} is named twice"));
        }
        keys.push(key);
    }
    Ok(keys)
}

/// A time: RFC 3339 (`2026-01-31T12:00:00Z`), a date (its midnight in `tz`), or a duration before
/// `now` (`90d`, `12h`, `2w`).
fn point(raw: &str, now: Timestamp, tz: &TimeZone) -> Result<Timestamp, String> {
    if let Ok(t) = raw.parse::<Timestamp>() {
        return Ok(t);
    }
    if let Ok(date) = raw.parse::<Date>() {
        return date.to_zoned(tz.clone()).map(|z| z.timestamp()).map_err(|e| e.to_string());
    }
    let expected = "expected a time (2026-01-31T12:00:00Z), a date (2026-01-31) or a duration before now (90d, 12h)";
    let ago = humantime::parse_duration(raw).map_err(|_| expected.to_owned())?;
    let ago = jiff::SignedDuration::try_from(ago).map_err(|_| expected.to_owned())?;
    now.checked_sub(ago).map_err(|_| format!("{raw} before now is out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(pairs: &[(&str, &str)]) -> Result<InsightsRequest, FilterError> {
        let now: Timestamp = "2026-04-01T12:00:00Z".parse().unwrap();
        let get = |name: &str| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| *v);
        InsightsRequest::from_parameters(None, get, Scope::all(), now)
    }

    fn hours(edges: &[Millis]) -> Vec<i64> {
        edges.windows(2).map(|w| (w[1] - w[0]) / 3_600_000).collect()
    }

    #[test]
    fn a_week_over_a_daylight_saving_change_in_berlin_is_167_hours() {
        // Summer time began on Sunday 2026-03-29 at 02:00 in Berlin.
        let r = request(&[("from", "2026-03-23"), ("to", "2026-04-06"), ("tz", "Europe/Berlin")]).unwrap();
        assert_eq!(r.buckets.edges[0], "2026-03-22T23:00:00Z".parse::<Timestamp>().unwrap().as_millisecond());
        assert_eq!(hours(&r.buckets.edges), [167, 168]);
        let days =
            request(&[("from", "2026-03-28"), ("to", "2026-03-31"), ("tz", "Europe/Berlin"), ("interval", "day")]);
        assert_eq!(hours(&days.unwrap().buckets.edges), [24, 23, 24]);
    }

    #[test]
    fn weeks_start_on_monday_and_months_on_the_first() {
        let r = request(&[("from", "2026-03-04T10:00:00Z"), ("to", "2026-03-05T00:00:00Z")]).unwrap();
        assert_eq!(r.buckets.edges, ["2026-03-02T00:00:00Z", "2026-03-09T00:00:00Z"].map(ms));
        let r = request(&[("from", "2026-01-31"), ("to", "2026-03-02"), ("interval", "month")]).unwrap();
        assert_eq!(
            r.buckets.edges,
            ["2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z", "2026-04-01T00:00:00Z"].map(ms)
        );
        let whole = request(&[("interval", "whole")]).unwrap();
        assert_eq!(whole.buckets.len(), 1);
        assert_eq!(whole.buckets.to, ms("2026-04-01T12:00:00Z"));
    }

    fn ms(s: &str) -> Millis {
        s.parse::<Timestamp>().unwrap().as_millisecond()
    }

    #[test]
    fn bad_parameters_are_named() {
        let name = |pairs: &[(&str, &str)]| request(pairs).unwrap_err().name;
        assert_eq!(name(&[("groupBy", "team")]), "groupBy");
        assert_eq!(name(&[("groupBy", "pipeline,pipeline")]), "groupBy");
        assert_eq!(name(&[("interval", "hour")]), "interval");
        assert_eq!(name(&[("tz", "Mars/Olympus")]), "tz");
        assert_eq!(name(&[("from", "yesterday")]), "from");
        assert_eq!(name(&[("from", "1d"), ("to", "2d")]), "from");
        assert_eq!(name(&[("from", "3000d"), ("interval", "day")]), "interval", "too many buckets");
        assert!(request(&[("from", "3000d"), ("interval", "week")]).is_ok());
        assert_eq!(name(&[("from", "4000d"), ("interval", "whole")]), "from", "longer than the limit");
        assert_eq!(name(&[("phase", "Done")]), "phase", "the executions' filter is read too");
    }
}
