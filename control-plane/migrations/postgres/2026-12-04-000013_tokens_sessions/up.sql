-- Personal API tokens expire and may be read-only (issue 20, part 2). A token made before
-- this migration had no expiry: it gets 90 days from the day the migration runs (the
-- default lifetime of a new token), so no integration breaks at once and every old token
-- is gone within 90 days unless its owner replaces it. Old tokens keep full scope.
ALTER TABLE api_tokens ADD COLUMN expires_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE api_tokens ADD COLUMN read_only BOOLEAN NOT NULL DEFAULT FALSE;
UPDATE api_tokens SET expires_at = CAST(EXTRACT(EPOCH FROM now()) AS BIGINT) + 90 * 86400;
CREATE INDEX api_tokens_user ON api_tokens (user_id, created_at);

-- Sessions can be listed and ended one by one: an id that is not the token's hash (the
-- page names a session by it), when it was last seen (written at most once a minute),
-- the device in words parsed from the User-Agent ("Firefox on Linux"; the header itself
-- is not kept) and a coarse place (the /24 or /48 network, never a full address).
-- Existing sessions get a random id and stay signed in.
ALTER TABLE sessions ADD COLUMN id TEXT NOT NULL DEFAULT '';
ALTER TABLE sessions ADD COLUMN last_seen_at BIGINT;
ALTER TABLE sessions ADD COLUMN device TEXT NOT NULL DEFAULT '';
ALTER TABLE sessions ADD COLUMN place TEXT NOT NULL DEFAULT '';
UPDATE sessions SET id = md5(random()::text || clock_timestamp()::text || token_hash);
CREATE UNIQUE INDEX sessions_id ON sessions (id);
CREATE INDEX sessions_user ON sessions (user_id);
