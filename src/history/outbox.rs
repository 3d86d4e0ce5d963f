//! The notifications' outbox, in the archive: messages are written once (their id derived from
//! what they tell, so a transition seen again adds nothing), claimed by one replica at a time
//! for a short lease, and marked sent, retried later, or dead-lettered. Every statement of the
//! outbox is here, in the SQL SQLite and PostgreSQL share (but for PostgreSQL's `SKIP LOCKED`).

use std::time::Duration;

use jiff::Timestamp;
use sqlx::{AnyPool, Row};

use super::store::{millis, timestamp};
use super::{Archive, ArchiveError};
use crate::quote::shorten;

/// The outbox's handle: the archive's connection.
#[derive(Clone)]
pub struct Outbox {
    pool: AnyPool,
    /// PostgreSQL: claims skip rows another replica is claiming instead of waiting for them.
    shared: bool,
}

/// A message to write.
#[derive(Clone, Debug)]
pub struct NewMessage {
    pub id: String,
    pub namespace: String,
    pub subscription: String,
    pub subscription_uid: String,
    pub event_type: String,
    pub subject: String,
    pub transition: String,
    pub body: String,
    pub content_type: String,
    pub event_time: Timestamp,
}

/// A message claimed for sending.
#[derive(Clone, Debug)]
pub struct Claimed {
    pub id: String,
    pub body: String,
    pub content_type: String,
    pub attempts: i64,
    pub created_at: Timestamp,
}

/// What became of one attempt.
#[derive(Clone, Debug)]
pub enum Outcome {
    Sent {
        status: u16,
    },
    /// Tried again at `retry_at`, or dead-lettered when `None`.
    Failed {
        status: Option<u16>,
        error: String,
        retry_at: Option<Timestamp>,
    },
}

/// A subscription's messages, as its status tells them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub waiting: i64,
    pub dead: i64,
    pub sent: i64,
    pub last_sent: Option<Timestamp>,
    /// The latest failed attempt's error, when it is newer than the latest success.
    pub last_error: Option<String>,
}

/// One row of a namespace's deliveries.
#[derive(Clone, Debug)]
pub struct DeliveryRow {
    pub id: String,
    pub subscription: String,
    pub event_type: String,
    pub subject: String,
    pub transition: String,
    pub state: String,
    pub attempts: i64,
    pub created_at: Timestamp,
    pub next_attempt_at: Option<Timestamp>,
    pub last_attempt_at: Option<Timestamp>,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub sent_at: Option<Timestamp>,
}

impl Archive {
    /// The outbox, once the archive is connected.
    pub fn outbox(&self) -> Result<Outbox, ArchiveError> {
        let pool = self.pool()?;
        let shared = pool.connect_options().database_url.scheme() != "sqlite";
        Ok(Outbox { pool, shared })
    }
}

fn failed(e: sqlx::Error) -> ArchiveError {
    ArchiveError::Failed(shorten(e.to_string()))
}

const INSERT: &str = "INSERT INTO notification_outbox (id, namespace, subscription, subscription_uid, \
    event_type, subject, transition, body, content_type, event_time, created_at, state, attempts, next_attempt_at, \
    claimed_until) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'waiting', 0, $11, 0) ON CONFLICT (id) DO NOTHING";

/// Claims a subscription's due messages: one statement, so two replicas never claim one row.
macro_rules! claim {
    ($lock:literal) => {
        concat!(
            "UPDATE notification_outbox SET claimed_by = $1, claimed_until = $2 WHERE id IN (",
            "SELECT id FROM notification_outbox WHERE subscription_uid = $3 AND state = 'waiting' ",
            "AND next_attempt_at <= $4 AND claimed_until <= $4 ORDER BY next_attempt_at LIMIT $5",
            $lock,
            ") RETURNING id, body, content_type, attempts, created_at"
        )
    };
}
const CLAIM: &str = claim!("");
/// PostgreSQL's: rows another replica is claiming are skipped, not waited for.
const CLAIM_SHARED: &str = claim!(" FOR UPDATE SKIP LOCKED");

impl Outbox {
    /// Writes messages in one transaction; those already there (by id) are left as they are.
    /// Returns how many were new.
    pub async fn enqueue(&self, messages: &[NewMessage]) -> Result<u64, ArchiveError> {
        let now = millis(Timestamp::now());
        let mut tx = self.pool.begin().await.map_err(failed)?;
        let mut added = 0;
        for m in messages {
            let done = sqlx::query(INSERT)
                .bind(&m.id)
                .bind(&m.namespace)
                .bind(&m.subscription)
                .bind(&m.subscription_uid)
                .bind(&m.event_type)
                .bind(&m.subject)
                .bind(&m.transition)
                .bind(&m.body)
                .bind(&m.content_type)
                .bind(millis(m.event_time))
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(failed)?;
            added += done.rows_affected();
        }
        tx.commit().await.map_err(failed)?;
        Ok(added)
    }

    /// Claims up to `limit` of a subscription's due messages for `lease`, as replica `me`.
    pub async fn claim(
        &self,
        subscription_uid: &str,
        me: &str,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<Claimed>, ArchiveError> {
        let now = Timestamp::now();
        let until = millis(now) + i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
        let rows = sqlx::query(if self.shared { CLAIM_SHARED } else { CLAIM })
            .bind(me)
            .bind(until)
            .bind(subscription_uid)
            .bind(millis(now))
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await
            .map_err(failed)?;
        let claimed = rows.iter().map(|row| Claimed {
            id: row.get(0),
            body: row.get(1),
            content_type: row.get(2),
            attempts: row.get(3),
            created_at: timestamp(row.get(4)),
        });
        let mut claimed: Vec<Claimed> = claimed.collect();
        claimed.sort_by_key(|c| c.created_at);
        Ok(claimed)
    }

    /// Records an attempt of a message this replica claimed: sent, to retry, or dead. A
    /// replica whose lease ran out records nothing (the message is another's now).
    pub async fn record(&self, id: &str, me: &str, outcome: &Outcome) -> Result<(), ArchiveError> {
        let now = millis(Timestamp::now());
        let query = match outcome {
            Outcome::Sent { status } => sqlx::query(
                "UPDATE notification_outbox SET state = 'sent', sent_at = $3, last_attempt_at = $3, \
                 attempts = attempts + 1, last_status = $4, last_error = NULL, claimed_by = NULL, claimed_until = 0 \
                 WHERE id = $1 AND claimed_by = $2",
            )
            .bind(id)
            .bind(me)
            .bind(now)
            .bind(i64::from(*status)),
            Outcome::Failed { status, error, retry_at } => sqlx::query(
                "UPDATE notification_outbox SET state = $5, last_attempt_at = $3, attempts = attempts + 1, \
                 last_status = $4, last_error = $6, next_attempt_at = $7, claimed_by = NULL, claimed_until = 0 \
                 WHERE id = $1 AND claimed_by = $2",
            )
            .bind(id)
            .bind(me)
            .bind(now)
            .bind(status.map(i64::from))
            .bind(if retry_at.is_some() { "waiting" } else { "dead" })
            .bind(shorten(error.clone()))
            .bind(retry_at.map_or(now, millis)),
        };
        query.execute(&self.pool).await.map_err(failed)?;
        Ok(())
    }

    /// Puts a subscription's waiting messages off until `until`, without an attempt: its
    /// destination is refused, or its Secret unreadable, and trying is pointless until it changes.
    pub async fn defer(&self, subscription_uid: &str, until: Timestamp, why: &str) -> Result<(), ArchiveError> {
        sqlx::query(
            "UPDATE notification_outbox SET next_attempt_at = $2, last_error = $3 \
             WHERE subscription_uid = $1 AND state = 'waiting' AND next_attempt_at < $2",
        )
        .bind(subscription_uid)
        .bind(millis(until))
        .bind(shorten(why.to_owned()))
        .execute(&self.pool)
        .await
        .map_err(failed)?;
        Ok(())
    }

    /// Makes a subscription's waiting messages due now (its destination was fixed).
    pub async fn wake(&self, subscription_uid: &str) -> Result<(), ArchiveError> {
        sqlx::query(
            "UPDATE notification_outbox SET next_attempt_at = $2 WHERE subscription_uid = $1 AND state = 'waiting'",
        )
        .bind(subscription_uid)
        .bind(millis(Timestamp::now()))
        .execute(&self.pool)
        .await
        .map_err(failed)?;
        Ok(())
    }

    /// When a subscription's next waiting message is due, if one waits.
    pub async fn next_due(&self, subscription_uid: &str) -> Result<Option<Timestamp>, ArchiveError> {
        let row = sqlx::query(
            "SELECT MIN(CASE WHEN next_attempt_at > claimed_until THEN next_attempt_at ELSE claimed_until END) \
             FROM notification_outbox WHERE subscription_uid = $1 AND state = 'waiting'",
        )
        .bind(subscription_uid)
        .fetch_one(&self.pool)
        .await
        .map_err(failed)?;
        Ok(row.get::<Option<i64>, _>(0).map(timestamp))
    }

    /// Dead-letters the waiting messages written before `before` (older than the age messages
    /// are tried for), whether or not they were ever attempted. Returns the namespace of each,
    /// for the metric.
    pub async fn expire(&self, before: Timestamp) -> Result<Vec<String>, ArchiveError> {
        sqlx::query_scalar(
            "UPDATE notification_outbox SET state = 'dead', \
             last_error = COALESCE(last_error, 'not delivered within the maximum age') \
             WHERE state = 'waiting' AND created_at < $1 AND claimed_until < $2 RETURNING namespace",
        )
        .bind(millis(before))
        .bind(millis(Timestamp::now()))
        .fetch_all(&self.pool)
        .await
        .map_err(failed)
    }

    /// Forgets sent and dead messages about transitions older than `before`: transitions that
    /// old are never written again, so their ids need not be kept to refuse duplicates.
    pub async fn forget(&self, before: Timestamp) -> Result<u64, ArchiveError> {
        let done = sqlx::query("DELETE FROM notification_outbox WHERE event_time < $1 AND state <> 'waiting'")
            .bind(millis(before))
            .execute(&self.pool)
            .await
            .map_err(failed)?;
        Ok(done.rows_affected())
    }

    /// Drops a deleted subscription's waiting messages: nothing is sent for it any more.
    pub async fn drop_waiting(&self, subscription_uid: &str) -> Result<u64, ArchiveError> {
        let done = sqlx::query("DELETE FROM notification_outbox WHERE subscription_uid = $1 AND state = 'waiting'")
            .bind(subscription_uid)
            .execute(&self.pool)
            .await
            .map_err(failed)?;
        Ok(done.rows_affected())
    }

    /// A subscription's counts, its last delivery and its latest error.
    pub async fn tally(&self, subscription_uid: &str) -> Result<Tally, ArchiveError> {
        let row = sqlx::query(
            "SELECT SUM(CASE WHEN state = 'waiting' THEN 1 ELSE 0 END), SUM(CASE WHEN state = 'dead' THEN 1 ELSE 0 END), \
             SUM(CASE WHEN state = 'sent' THEN 1 ELSE 0 END), MAX(sent_at), \
             MAX(CASE WHEN last_error IS NOT NULL THEN last_attempt_at END) \
             FROM notification_outbox WHERE subscription_uid = $1",
        )
        .bind(subscription_uid)
        .fetch_one(&self.pool)
        .await
        .map_err(failed)?;
        let count = |i: usize| row.try_get::<Option<i64>, _>(i).ok().flatten().unwrap_or(0);
        let last_sent: Option<i64> = row.get(3);
        let last_failed: Option<i64> = row.get(4);
        let mut tally = Tally {
            waiting: count(0),
            dead: count(1),
            sent: count(2),
            last_sent: last_sent.map(timestamp),
            last_error: None,
        };
        if let Some(at) = last_failed.filter(|at| last_sent.is_none_or(|sent| *at > sent)) {
            tally.last_error = sqlx::query(
                "SELECT last_error FROM notification_outbox WHERE subscription_uid = $1 AND last_attempt_at = $2 \
                 AND last_error IS NOT NULL LIMIT 1",
            )
            .bind(subscription_uid)
            .bind(at)
            .fetch_optional(&self.pool)
            .await
            .map_err(failed)?
            .map(|row| row.get(0));
        }
        Ok(tally)
    }

    /// A namespace's latest `limit` deliveries, newest first; of one subscription, in one
    /// state, when named.
    pub async fn deliveries(
        &self,
        namespace: &str,
        subscription: Option<&str>,
        state: Option<&str>,
        limit: usize,
    ) -> Result<Vec<DeliveryRow>, ArchiveError> {
        let rows = sqlx::query(
            "SELECT id, subscription, event_type, subject, transition, state, attempts, created_at, next_attempt_at, \
             last_attempt_at, last_status, last_error, sent_at FROM notification_outbox \
             WHERE namespace = $1 AND ($2 = '' OR subscription = $2) AND ($3 = '' OR state = $3) \
             ORDER BY created_at DESC, id LIMIT $4",
        )
        .bind(namespace)
        .bind(subscription.unwrap_or(""))
        .bind(state.unwrap_or(""))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(failed)?;
        Ok(rows.iter().map(delivery_row).collect())
    }
}

fn delivery_row(row: &sqlx::any::AnyRow) -> DeliveryRow {
    let time = |i: usize| row.get::<Option<i64>, _>(i).map(timestamp);
    let state: String = row.get(5);
    DeliveryRow {
        id: row.get(0),
        subscription: row.get(1),
        event_type: row.get(2),
        subject: row.get(3),
        transition: row.get(4),
        next_attempt_at: if state == "waiting" { time(8) } else { None },
        state,
        attempts: row.get(6),
        created_at: timestamp(row.get(7)),
        last_attempt_at: time(9),
        last_status: row.get(10),
        last_error: row.get(11),
        sent_at: time(12),
    }
}
