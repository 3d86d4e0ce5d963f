-- The uid of the namespace a row was written in: a namespace deleted and created again under
-- the same name is another namespace, and rows of the earlier one are served to nobody. NULL
-- for rows written before, or without a cluster to ask (a directory source).
ALTER TABLE executions ADD COLUMN namespace_uid TEXT;
