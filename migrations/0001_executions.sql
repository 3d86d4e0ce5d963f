-- Every execution version that was validated and served, one row per ConfigMap (namespace,
-- name and uid): a ConfigMap deleted and created again under the same name is a new row.
-- Written in the SQL that SQLite and PostgreSQL share. Times are Unix milliseconds.
CREATE TABLE executions (
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    uid TEXT NOT NULL,
    -- The ConfigMap's resourceVersion, and its order where it is a number (etcd's are): a
    -- replica that saw an older version never overwrites a newer one.
    resource_version TEXT NOT NULL,
    version_order BIGINT NOT NULL,
    -- The schema files the version was validated against, so a warm start can tell whether
    -- the stored document still stands.
    schema_set TEXT NOT NULL,
    pipeline TEXT NOT NULL,
    phase TEXT NOT NULL,
    -- The sort time lists order by (startedAt, else the ConfigMap's creation), and the run's
    -- own times as the document gives them.
    sort_time BIGINT NOT NULL,
    started_at TEXT,
    finished_at TEXT,
    labels TEXT NOT NULL,
    -- The bodies as served: one item of a list, and GET one.
    summary TEXT NOT NULL,
    detail TEXT NOT NULL,
    first_seen BIGINT NOT NULL,
    last_seen BIGINT NOT NULL,
    -- When the ConfigMap was seen deleted or unlabelled; NULL while it exists.
    deleted_at BIGINT,
    -- The namespace's bytes, a zero byte, the name's: lists order ties of sort_time by it.
    -- Bytes compare alike in both databases, whatever PostgreSQL's collation makes of text.
    list_key BYTEA NOT NULL,
    PRIMARY KEY (namespace, name, uid)
);

-- Lists of archived executions (their ConfigMaps gone): newest first, keyset-paged; of every
-- namespace, of one, of one pipeline, of one phase.
CREATE INDEX executions_archived ON executions (sort_time DESC, list_key) WHERE deleted_at IS NOT NULL;
CREATE INDEX executions_archived_by_namespace ON executions (namespace, sort_time DESC, list_key)
    WHERE deleted_at IS NOT NULL;
CREATE INDEX executions_archived_by_pipeline ON executions (pipeline, sort_time DESC, list_key)
    WHERE deleted_at IS NOT NULL;
CREATE INDEX executions_archived_by_phase ON executions (phase, sort_time DESC, list_key)
    WHERE deleted_at IS NOT NULL;
-- Retention: deleted rows by age.
CREATE INDEX executions_by_deletion ON executions (deleted_at);
