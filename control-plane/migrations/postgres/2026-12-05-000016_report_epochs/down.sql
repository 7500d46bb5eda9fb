ALTER TABLE nodes DROP COLUMN last_epoch;
DELETE FROM node_reports r USING node_reports o
    WHERE r.node_id = o.node_id AND r.seq = o.seq AND r.epoch > o.epoch;
ALTER TABLE node_reports DROP CONSTRAINT node_reports_pkey;
ALTER TABLE node_reports ADD PRIMARY KEY (node_id, seq);
ALTER TABLE node_reports DROP COLUMN epoch;
