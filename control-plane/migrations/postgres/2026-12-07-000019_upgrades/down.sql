DROP TABLE upgrade_nodes;
DROP TABLE upgrades;
