ALTER TABLE workspaces DROP COLUMN region;
