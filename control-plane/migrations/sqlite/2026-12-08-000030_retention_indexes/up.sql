-- The daily retention run deletes by age (issue 18): report receipts after 2 days, hourly
-- counts and node timelines after 90. Without an index on the age column each delete
-- reads the whole table, which at 100,000 nodes is hundreds of millions of receipts.
CREATE INDEX node_reports_received ON node_reports (received_at);
CREATE INDEX usage_counts_hour ON usage_counts (hour);
CREATE INDEX node_events_at ON node_events (at_ms);
