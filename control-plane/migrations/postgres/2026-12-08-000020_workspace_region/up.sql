-- The region the owner chose for the workspace's node when creating it (issue 15), one of
-- OUTPOST_OVH_REGIONS; NULL with the local provisioner, or for a workspace created before
-- the choice existed (its node goes to the first configured region). Kept on the
-- workspace because with billing on the node is only requested once the checkout is paid.
ALTER TABLE workspaces ADD COLUMN region TEXT;
