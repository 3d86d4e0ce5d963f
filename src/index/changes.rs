//! A bounded history of what changed, in order, so streams fan out from the one index and a
//! client that reconnects resumes exactly where it left off. Each change has a sequence number
//! (an event's `id`); a stream keeps only its position, so a slow reader holds no queue of its
//! own. What falls out of the history is lost to it: it resynchronises from a snapshot.

use std::collections::VecDeque;
use std::sync::Arc;

use super::{ExecutionEntry, Index, ResolvedPipeline};

/// One change, with the object before and after it (`None`: absent), so a stream can tell
/// whether it entered, changed within or left the set it follows.
#[derive(Clone)]
pub enum Changed {
    Execution {
        before: Option<Arc<ExecutionEntry>>,
        after: Option<Arc<ExecutionEntry>>,
        /// Set when the execution left because its ConfigMap was deleted (or unlabelled) and
        /// the archive keeps it: when, as the archive records it.
        archived: Option<jiff::Timestamp>,
    },
    Pipeline {
        before: Option<Arc<ResolvedPipeline>>,
        after: Option<Arc<ResolvedPipeline>>,
    },
}

/// A change and its sequence number.
#[derive(Clone)]
pub struct Change {
    pub seq: u64,
    pub what: Changed,
}

/// The history lost the changes a stream asked for: it must resynchronise.
#[derive(Debug, PartialEq, Eq)]
pub struct Lost;

/// The history: at most `MAX_CHANGES` changes holding at most `MAX_BYTES` of responses that
/// the index itself may no longer hold (versions since replaced).
pub(super) struct History {
    changes: VecDeque<(Change, usize)>,
    bytes: usize,
    /// The sequence number the next change gets; it survives `Index::clear`.
    next: u64,
}

const MAX_CHANGES: usize = 4096;
const MAX_BYTES: usize = 16 << 20;

impl Default for History {
    fn default() -> Self {
        // Numbers start at the process's start time in milliseconds, like revisions, so an id a
        // client kept from another process is (nearly always) unknown here, never mistaken.
        let epoch = u64::try_from(jiff::Timestamp::now().as_millisecond()).unwrap_or_default();
        History { changes: VecDeque::new(), bytes: 0, next: epoch << 12 }
    }
}

impl History {
    pub(super) fn record(&mut self, what: Changed) {
        let weight = weight(&what);
        self.changes.push_back((Change { seq: self.next, what }, weight));
        self.next += 1;
        self.bytes += weight;
        while self.changes.len() > MAX_CHANGES || (self.bytes > MAX_BYTES && self.changes.len() > 1) {
            if let Some((_, w)) = self.changes.pop_front() {
                self.bytes -= w;
            }
        }
    }

    /// A fresh history that goes on numbering where this one ends.
    pub(super) fn successor(&self) -> History {
        History { changes: VecDeque::new(), bytes: 0, next: self.next }
    }

    /// The sequence number of the last change (one below the first, before any).
    pub(super) fn last(&self) -> u64 {
        self.next - 1
    }

    /// Up to `limit` changes after `seq`, or `Lost` when some of them are no longer held, or
    /// `seq` was never issued here.
    fn since(&self, seq: u64, limit: usize) -> Result<Vec<Change>, Lost> {
        if seq > self.last() {
            return Err(Lost);
        }
        let first = self.changes.front().map_or(self.next, |(c, _)| c.seq);
        if seq + 1 < first {
            return Err(Lost);
        }
        let skip = usize::try_from(seq + 1 - first).unwrap_or(usize::MAX);
        Ok(self.changes.iter().skip(skip).take(limit).map(|(c, _)| c.clone()).collect())
    }
}

fn weight(what: &Changed) -> usize {
    let execution = |e: &Option<Arc<ExecutionEntry>>| e.as_ref().map_or(0, |e| e.detail.len() + e.summary.bytes.len());
    let body = |b: &Option<super::Json>| b.as_ref().map_or(0, |b| b.bytes.len());
    let pipeline = |p: &Option<Arc<ResolvedPipeline>>| p.as_ref().map_or(0, |p| body(&p.live) + body(&p.whole));
    match what {
        Changed::Execution { before, after, .. } => execution(before) + execution(after),
        Changed::Pipeline { before, after } => pipeline(before) + pipeline(after),
    }
}

impl Index {
    /// Up to `limit` changes after `seq`, in order: a reader takes a few at a time, so one that
    /// is slow holds no more than that of the history.
    pub fn changes_since(&self, seq: u64, limit: usize) -> Result<Vec<Change>, Lost> {
        self.read().changes.since(seq, limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pipeline_change(history: &mut History) {
        history.record(Changed::Pipeline { before: None, after: None });
    }

    #[test]
    fn readers_resume_after_what_they_saw_until_the_history_moves_past_them() {
        let mut history = History::default();
        let start = history.last();
        assert_eq!(history.since(start, 10).map(|c| c.len()), Ok(0));
        for _ in 0..5 {
            pipeline_change(&mut history);
        }
        let seqs = |changes: Vec<Change>| changes.iter().map(|c| c.seq - start).collect::<Vec<_>>();
        assert_eq!(history.since(start, 10).map(seqs), Ok(vec![1, 2, 3, 4, 5]));
        assert_eq!(history.since(start + 2, 2).map(seqs), Ok(vec![3, 4]), "a few at a time");
        assert_eq!(history.since(start + 6, 10).err(), Some(Lost), "an id not issued yet");
        for _ in 0..MAX_CHANGES {
            pipeline_change(&mut history);
        }
        assert_eq!(history.since(start, 10).err(), Some(Lost), "fell out of the history");
        assert!(history.since(history.last() - 1, 10).is_ok());
        let next = history.successor();
        assert_eq!(next.last(), history.last(), "numbering goes on after a clear");
        assert_eq!(next.since(start + 3, 10).err(), Some(Lost));
    }
}
