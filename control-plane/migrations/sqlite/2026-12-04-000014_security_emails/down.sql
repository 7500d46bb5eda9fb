DROP TABLE email_changes;
DROP TABLE known_devices;
