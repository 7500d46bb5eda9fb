-- Appointments per node and hour (UTC, unix seconds at its start) (issue 16): bookings
-- made, moved and cancelled, from the nodes' reports, shown on the workspace page. Counts
-- only: no customer, service or appointment time.
CREATE TABLE booking_counts (
    node_id TEXT NOT NULL,
    hour BIGINT NOT NULL,
    booked BIGINT NOT NULL,
    rescheduled BIGINT NOT NULL,
    cancelled BIGINT NOT NULL,
    PRIMARY KEY (node_id, hour)
);
