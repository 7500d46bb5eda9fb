-- Messaging channels an agent answers besides web chat, comma-separated (telegram, whatsapp).
ALTER TABLE agents ADD COLUMN channels TEXT NOT NULL DEFAULT '';
