DROP TABLE workspace_secrets;
