-- What a warm start would otherwise compute again from each stored version: the typed view the
-- index keeps (JSON, a few hundred bytes, read instead of the whole detail) and the two bodies'
-- ETags (32 hex digits each, instead of hashing about 9 kB a row). NULL for rows written before:
-- a warm start computes those as it did, and has them written.
ALTER TABLE executions ADD COLUMN served_view TEXT;
ALTER TABLE executions ADD COLUMN detail_tag TEXT;
ALTER TABLE executions ADD COLUMN summary_tag TEXT;
