-- Browsers an account has signed in from, so a sign-in from another one can be announced
-- by email. A browser carries a random device token in a long-lived HttpOnly cookie; only
-- its SHA-256 is kept. No User-Agent, no IP: the email describes the device from the
-- request in hand. Deleted a year after the browser was last seen (CP retention) and with
-- the account.
CREATE TABLE known_devices (
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash TEXT NOT NULL,
    first_seen_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, token_hash)
);
CREATE INDEX known_devices_last_seen ON known_devices (last_seen_at);

-- A requested change of an account's email address, waiting for the link sent to the new
-- address: single use, 30 minutes, stored by the token's SHA-256; deleted a day after it
-- expires (CP retention) and with the account.
CREATE TABLE email_changes (
    token_hash TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    new_email TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);
CREATE INDEX email_changes_user ON email_changes (user_id);
