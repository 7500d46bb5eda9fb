ALTER TABLE nodes DROP COLUMN waiting_notified_at;
ALTER TABLE nodes DROP COLUMN waiting_conversations;
