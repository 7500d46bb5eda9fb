-- Fingerprints of the data-directory keys the database was first used with (issue 15,
-- replicas): `name` is `ca.key`, `capability.key` or `fingerprint.key`; `fingerprint` is
-- the SHA-256 of the CA's certificate, the SHA-256 of the capability public key, and an
-- HMAC-SHA256 of a fixed label under the fingerprint key. Never the keys: a replica
-- started with other keys compares and refuses to start.
CREATE TABLE key_fingerprints (
    name TEXT PRIMARY KEY NOT NULL,
    fingerprint TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
