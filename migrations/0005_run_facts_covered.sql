-- Insights read a range of archived runs' facts from an index that holds them, so a run costs
-- no table page of its own: the rows of `run_facts` lie in the order they were written, not in
-- time, and reading 125 000 runs of 90 days out of 1 000 000 went from 280 to 130 ms in SQLite's
-- shell alone. By time, and by namespace and time (a caller's scope is read a namespace at a
-- time), as the two indexes this replaces.
--
-- Only facts of up to 512 characters are held there: PostgreSQL refuses an index entry larger
-- than about 2.7 kB, and 512 characters are 2 kB at most. That is every run of up to about a
-- dozen environments (src/insights/facts.rs stores about 40 characters an environment); longer
-- ones are found through indexes of their own and read from the table. A read asks both.
DROP INDEX run_facts_archived;
DROP INDEX run_facts_archived_by_namespace;
CREATE INDEX run_facts_archived_held ON run_facts (last_counted, namespace, uid, configmap_created, facts)
    WHERE deleted_at IS NOT NULL AND length(facts) <= 512;
CREATE INDEX run_facts_archived_held_by_namespace ON run_facts (namespace, last_counted, uid, configmap_created, facts)
    WHERE deleted_at IS NOT NULL AND length(facts) <= 512;
CREATE INDEX run_facts_archived_long ON run_facts (last_counted)
    WHERE deleted_at IS NOT NULL AND length(facts) > 512;
CREATE INDEX run_facts_archived_long_by_namespace ON run_facts (namespace, last_counted)
    WHERE deleted_at IS NOT NULL AND length(facts) > 512;
