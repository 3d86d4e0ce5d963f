-- Insights' rollup of each archived run: what it counts for (src/insights/facts.rs), kept beside
-- its row of `executions` and copied from it, so that insights over a year read small rows,
-- never documents. `facts` is JSON; `last_counted` is the latest time (Unix milliseconds) any
-- of them is counted at, so a range reads only the runs it can count. Rows are written with
-- their execution's version, marked deleted with it and pruned with it; `facts_version` says
-- which rules made them, and a binary with other rules rebuilds them all when it connects.
CREATE TABLE run_facts (
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    uid TEXT NOT NULL,
    pipeline TEXT NOT NULL,
    labels TEXT NOT NULL,
    configmap_created BIGINT,
    deleted_at BIGINT,
    last_counted BIGINT,
    facts TEXT NOT NULL,
    PRIMARY KEY (namespace, name, uid)
);

-- A range's runs: of every namespace, of one (a caller's scope is read a namespace at a time, so
-- no plan walks the rows of a namespace the caller may not read), and of one pipeline.
CREATE INDEX run_facts_archived ON run_facts (last_counted) WHERE deleted_at IS NOT NULL;
CREATE INDEX run_facts_archived_by_namespace ON run_facts (namespace, last_counted) WHERE deleted_at IS NOT NULL;
CREATE INDEX run_facts_archived_by_pipeline ON run_facts (pipeline, last_counted) WHERE deleted_at IS NOT NULL;
CREATE INDEX run_facts_archived_by_namespace_pipeline ON run_facts (namespace, pipeline, last_counted)
    WHERE deleted_at IS NOT NULL;
CREATE INDEX run_facts_by_deletion ON run_facts (deleted_at);

-- The rules the rows of run_facts were made by; none yet, so the first connection rebuilds them.
CREATE TABLE run_facts_version (version BIGINT NOT NULL);
