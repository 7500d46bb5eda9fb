-- Phone calls per node and hour (UTC, unix seconds at its start) (issue 16): calls that
-- came in and the minutes of the calls that ended, from the nodes' reports, shown on the
-- workspace page next to the messages. Counts only: no number, no call, no duration of
-- any one call.
CREATE TABLE call_counts (
    node_id TEXT NOT NULL,
    hour BIGINT NOT NULL,
    calls BIGINT NOT NULL,
    minutes BIGINT NOT NULL,
    PRIMARY KEY (node_id, hour)
);
