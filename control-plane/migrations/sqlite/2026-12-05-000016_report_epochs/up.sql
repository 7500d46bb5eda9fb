-- Report ordering survives an absurd seq and a node restored from a backup (issue 18):
-- reports are unique per (node, epoch, seq), where the epoch is the node process's random
-- id ('' for nodes that send none), and the node remembers the epoch of its newest report.
CREATE TABLE node_reports_new (
    node_id TEXT NOT NULL REFERENCES nodes (id),
    seq BIGINT NOT NULL,
    produced_at BIGINT NOT NULL,
    received_at BIGINT NOT NULL,
    epoch TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (node_id, epoch, seq)
);
INSERT INTO node_reports_new (node_id, seq, produced_at, received_at, epoch)
    SELECT node_id, seq, produced_at, received_at, '' FROM node_reports;
DROP TABLE node_reports;
ALTER TABLE node_reports_new RENAME TO node_reports;
ALTER TABLE nodes ADD COLUMN last_epoch TEXT;
