DROP INDEX sessions_user;
DROP INDEX sessions_id;
ALTER TABLE sessions DROP COLUMN place;
ALTER TABLE sessions DROP COLUMN device;
ALTER TABLE sessions DROP COLUMN last_seen_at;
ALTER TABLE sessions DROP COLUMN id;
DROP INDEX api_tokens_user;
ALTER TABLE api_tokens DROP COLUMN read_only;
ALTER TABLE api_tokens DROP COLUMN expires_at;
