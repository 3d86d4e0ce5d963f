-- Notifications waiting, sent and dead-lettered: one row per message, whose id (the
-- `webhook-id` receivers see) is derived from the subscription, the execution and the
-- transition, so a transition seen again (a restart, a relist, another replica) adds nothing.
-- The body is fixed when the row is written: every attempt sends the same bytes. Times are Unix
-- milliseconds.
CREATE TABLE notification_outbox (
    id TEXT PRIMARY KEY,
    namespace TEXT NOT NULL,
    -- The NotificationSubscription: its name, and its uid (a subscription deleted and created
    -- again under the same name is another one).
    subscription TEXT NOT NULL,
    subscription_uid TEXT NOT NULL,
    event_type TEXT NOT NULL,
    -- What the message is about: `namespace/name` of the ConfigMap, and the transition.
    subject TEXT NOT NULL,
    transition TEXT NOT NULL,
    body TEXT NOT NULL,
    -- The CloudEvent's, or `application/json` for a subscription's own template.
    content_type TEXT NOT NULL,
    -- When the transition happened, as the run says (or when it was seen): rows are kept by it.
    event_time BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    -- waiting, sent or dead.
    state TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    last_attempt_at BIGINT,
    last_status BIGINT,
    last_error TEXT,
    sent_at BIGINT,
    -- The replica that holds the row while it sends it, and until when (0: nobody).
    claimed_by TEXT,
    claimed_until BIGINT NOT NULL
);

-- A subscription's due messages, oldest first: what its sender claims.
CREATE INDEX notification_outbox_due ON notification_outbox (subscription_uid, next_attempt_at)
    WHERE state = 'waiting';
-- A namespace's deliveries, newest first (the API, the CLI, the dashboard).
CREATE INDEX notification_outbox_by_namespace ON notification_outbox (namespace, created_at);
-- A subscription's counts by state and its last delivery (its status).
CREATE INDEX notification_outbox_by_subscription ON notification_outbox (subscription_uid, state, sent_at);
-- What is kept no more.
CREATE INDEX notification_outbox_by_event_time ON notification_outbox (event_time);
