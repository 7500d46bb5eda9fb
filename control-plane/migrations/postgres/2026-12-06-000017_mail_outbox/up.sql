-- The durable email outbox (issue 18, defect 8): every email but a sign-in link is
-- written here in the same transaction as the change it announces, and a worker sends it
-- (claimed with a lease, so several replicas send each once), retrying with exponential
-- backoff until `attempts` reaches the configured maximum. The body is emptied once the
-- email is sent or given up (it may hold a single-use link); the rest (recipient, subject,
-- times, error code) is deleted 7 days later.
CREATE TABLE mail_outbox (
    id TEXT PRIMARY KEY NOT NULL,
    recipient TEXT NOT NULL,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    -- `queued`, `sent` or `failed` (given up).
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    locked_until BIGINT,
    locked_by TEXT,
    -- The transport and error kind of the last failure (`smtp: timeout`), never an answer.
    last_error TEXT,
    created_at BIGINT NOT NULL,
    done_at BIGINT
);
CREATE INDEX mail_outbox_due ON mail_outbox (state, next_attempt_at);
CREATE INDEX mail_outbox_done ON mail_outbox (done_at);
