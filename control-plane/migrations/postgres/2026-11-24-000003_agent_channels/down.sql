ALTER TABLE agents DROP COLUMN channels;
