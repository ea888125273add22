-- The inspector's BAD verdict on a post: the version it rejected. The API answers 404 for a post
-- whose current version was rejected (the detail cache holds a tombstone for it as well).
ALTER TABLE posts ADD COLUMN rejected_version BIGINT NULL;
