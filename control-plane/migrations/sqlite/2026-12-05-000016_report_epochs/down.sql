ALTER TABLE nodes DROP COLUMN last_epoch;
CREATE TABLE node_reports_old (
    node_id TEXT NOT NULL REFERENCES nodes (id),
    seq BIGINT NOT NULL,
    produced_at BIGINT NOT NULL,
    received_at BIGINT NOT NULL,
    PRIMARY KEY (node_id, seq)
);
INSERT OR IGNORE INTO node_reports_old (node_id, seq, produced_at, received_at)
    SELECT node_id, seq, produced_at, received_at FROM node_reports;
DROP TABLE node_reports;
ALTER TABLE node_reports_old RENAME TO node_reports;
