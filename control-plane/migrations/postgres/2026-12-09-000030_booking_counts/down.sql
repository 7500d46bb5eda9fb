DROP TABLE booking_counts;
