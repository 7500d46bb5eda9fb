DROP TABLE agents;
ALTER TABLE workspaces DROP COLUMN config_revision;
