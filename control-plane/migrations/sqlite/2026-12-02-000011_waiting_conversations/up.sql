-- How many conversations on the node wait for the team (a customer asked for a person and
-- nobody has taken over): a count from the node's report, never which ones. The CP emails
-- the workspace's members when it rises, at most every 10 minutes per node.
ALTER TABLE nodes ADD COLUMN waiting_conversations BIGINT;
ALTER TABLE nodes ADD COLUMN waiting_notified_at BIGINT;
