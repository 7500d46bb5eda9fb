DROP TABLE retention_runs;
DROP TABLE audit_anchor;
ALTER TABLE workspaces DROP COLUMN deprovision_after;
DROP TABLE retention_sweeps;
DROP TABLE node_exports;
