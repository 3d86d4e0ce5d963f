-- Archived lists of a scope read one namespace at a time, so that no plan walks the rows of a
-- namespace the caller may not read (their number would show in the time of an answer): the
-- pipeline and phase filters get indexes that lead with namespace. The namespace-less ones stay
-- for the lists of every namespace, which only a caller who may read them all is given.
CREATE INDEX executions_archived_by_namespace_pipeline ON executions (namespace, pipeline, sort_time DESC, list_key)
    WHERE deleted_at IS NOT NULL;
CREATE INDEX executions_archived_by_namespace_phase ON executions (namespace, phase, sort_time DESC, list_key)
    WHERE deleted_at IS NOT NULL;
