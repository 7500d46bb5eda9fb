DROP INDEX node_events_at;
DROP INDEX usage_counts_hour;
DROP INDEX node_reports_received;
