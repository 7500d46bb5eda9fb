-- Real servers (issue 15): a node's public addresses and DNS name, as the provider and
-- Cloudflare gave them (the provider's instance id is in provider_ref, `ovh:<id>`).
ALTER TABLE nodes ADD COLUMN ipv4 TEXT;
ALTER TABLE nodes ADD COLUMN ipv6 TEXT;
ALTER TABLE nodes ADD COLUMN dns_name TEXT;
