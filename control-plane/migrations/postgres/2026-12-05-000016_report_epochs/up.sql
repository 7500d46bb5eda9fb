-- Report ordering survives an absurd seq and a node restored from a backup (issue 18):
-- reports are unique per (node, epoch, seq), where the epoch is the node process's random
-- id ('' for nodes that send none), and the node remembers the epoch of its newest report.
ALTER TABLE node_reports ADD COLUMN epoch TEXT NOT NULL DEFAULT '';
ALTER TABLE node_reports DROP CONSTRAINT node_reports_pkey;
ALTER TABLE node_reports ADD PRIMARY KEY (node_id, epoch, seq);
ALTER TABLE nodes ADD COLUMN last_epoch TEXT;
