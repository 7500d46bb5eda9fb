DROP TABLE workspace_suspensions;
