//! Durations as a tally holds them, and their statistics: exact, nearest-rank percentiles.

use super::facts::Millis;
use crate::wire::Stats;

/// A tally's durations, exact. Nearly every one fits in 32 bits of milliseconds (49 days), so
/// they are held so until one does not: half the memory for a year of a busy group.
pub(super) enum Values {
    Narrow(Vec<u32>),
    Wide(Vec<Millis>),
}

impl Default for Values {
    fn default() -> Self {
        Values::Narrow(Vec::new())
    }
}

impl Values {
    pub(super) fn push(&mut self, value: Millis) {
        match (&mut *self, u32::try_from(value)) {
            (Values::Narrow(narrow), Ok(value)) => narrow.push(value),
            (Values::Narrow(narrow), Err(_)) => {
                let mut wide: Vec<Millis> = narrow.iter().map(|v| Millis::from(*v)).collect();
                wide.push(value);
                *self = Values::Wide(wide);
            }
            (Values::Wide(wide), _) => wide.push(value),
        }
    }

    pub(super) fn extend(&mut self, values: impl IntoIterator<Item = Millis>) {
        values.into_iter().for_each(|value| self.push(value));
    }

    pub(super) fn len(&self) -> usize {
        match self {
            Values::Narrow(values) => values.len(),
            Values::Wide(values) => values.len(),
        }
    }

    /// Moves `other`'s values in.
    pub(super) fn append(&mut self, other: Values) {
        match (&mut *self, other) {
            (Values::Narrow(mine), Values::Narrow(theirs)) if mine.is_empty() => *mine = theirs,
            (Values::Narrow(mine), Values::Narrow(mut theirs)) => mine.append(&mut theirs),
            (_, Values::Narrow(theirs)) => self.extend(theirs.into_iter().map(Millis::from)),
            (_, Values::Wide(theirs)) => self.extend(theirs),
        }
    }

    /// Their statistics; they are left sorted.
    pub(super) fn stats(&mut self) -> Stats {
        match self {
            Values::Narrow(values) => stats(values),
            Values::Wide(values) => stats(values),
        }
    }
}

/// Count, nearest-rank percentiles, extremes and mean of `values`, in seconds.
pub fn stats<T: Copy + Ord + Into<Millis>>(values: &mut [T]) -> Stats {
    if values.is_empty() {
        return Stats::default();
    }
    values.sort_unstable();
    let n = values.len();
    let seconds = |ms: T| ms.into() as f64 / 1000.0;
    // Nearest rank: the smallest value with at least p % of the values at or below it.
    let rank = |p: usize| seconds(values[(p * n).div_ceil(100).max(1) - 1]);
    let sum: i128 = values.iter().map(|v| i128::from((*v).into())).sum();
    Stats {
        count: n as u64,
        p50: Some(rank(50)),
        p90: Some(rank(90)),
        p95: Some(rank(95)),
        p99: Some(rank(99)),
        min: Some(seconds(values[0])),
        max: Some(seconds(values[n - 1])),
        mean: Some(sum as f64 / n as f64 / 1000.0),
    }
}
