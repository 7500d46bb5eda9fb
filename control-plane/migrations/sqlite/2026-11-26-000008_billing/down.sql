DROP TABLE invoices;
DROP TABLE stripe_events;
DROP TABLE billing_accounts;
