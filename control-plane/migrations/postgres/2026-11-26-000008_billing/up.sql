-- Stripe billing (issue 7). Billing metadata only: Stripe ids, plan, statuses, amounts and
-- times. No card data, no names, no addresses: those stay at Stripe (docs/PRIVACY.md).
-- Timestamps are unix seconds; `*_event_created` columns hold Stripe's `created` of the
-- event that last set a value, so an older event delivered late cannot overwrite it.

-- One row per workspace that has started a checkout. `activated_at` is set once, by the
-- first confirmation of payment (return page or webhook); that same conditional update is
-- what requests the workspace's node, so it is requested once.
CREATE TABLE billing_accounts (
    workspace_id TEXT PRIMARY KEY NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    plan TEXT NOT NULL,
    stripe_customer_id TEXT,
    stripe_subscription_id TEXT,
    subscription_status TEXT,
    status_event_created BIGINT,
    current_period_end BIGINT,
    activated_at BIGINT,
    cancel_requested_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX billing_accounts_customer ON billing_accounts (stripe_customer_id);
CREATE INDEX billing_accounts_subscription ON billing_accounts (stripe_subscription_id);

-- Webhook events already handled, for deduplication (pruned after 30 days; Stripe stops
-- retrying after 3).
CREATE TABLE stripe_events (
    id TEXT PRIMARY KEY NOT NULL,
    type TEXT NOT NULL,
    created BIGINT NOT NULL,
    received_at BIGINT NOT NULL
);
CREATE INDEX stripe_events_received ON stripe_events (received_at);

-- Invoices as Stripe reports them. `workspace_id` is NULL until the invoice's customer is
-- known to belong to a workspace (an invoice event may arrive before the checkout's). No
-- ON DELETE CASCADE: billing records are kept 7 years, whatever happens to the workspace.
-- `first_failed_at` is when a payment attempt first failed; the grace period runs from it.
CREATE TABLE invoices (
    id TEXT PRIMARY KEY NOT NULL,
    workspace_id TEXT REFERENCES workspaces (id),
    stripe_customer_id TEXT NOT NULL,
    number TEXT,
    amount_due BIGINT NOT NULL,
    amount_paid BIGINT NOT NULL,
    currency TEXT NOT NULL,
    status TEXT NOT NULL,
    hosted_invoice_url TEXT,
    first_failed_at BIGINT,
    created BIGINT NOT NULL,
    updated_from_event_created BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX invoices_workspace ON invoices (workspace_id, created);
CREATE INDEX invoices_customer ON invoices (stripe_customer_id);
