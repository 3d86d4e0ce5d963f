-- When the row's ConfigMap was created, by the API server's clock (Unix milliseconds): a
-- namespace deleted and created again under the same name is another namespace, and a row
-- whose ConfigMap was created before the namespace now of that name belongs to an earlier one,
-- which is served to nobody. NULL for rows written before, or without that time.
ALTER TABLE executions ADD COLUMN configmap_created BIGINT;
