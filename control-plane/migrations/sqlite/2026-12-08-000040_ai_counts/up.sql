-- AI use per node, day (UTC, unix seconds at its start) and model (issue 19 part 5):
-- counts from the nodes' reports, shown on the workspace page next to the messages. The
-- model name is checked at ingest (bounded, `A-Z a-z 0-9 . _ : / @ -`); no content.
CREATE TABLE ai_counts (
    node_id TEXT NOT NULL,
    day BIGINT NOT NULL,
    model TEXT NOT NULL,
    requests BIGINT NOT NULL,
    input_tokens BIGINT NOT NULL,
    output_tokens BIGINT NOT NULL,
    PRIMARY KEY (node_id, day, model)
);
